// LSH backward of sampled YOSO on the CPU: the three gradients in one pass over the buckets,
//   grad_value_j = key_mask_j / m         sum_f sum_i [collide] query_mask_i g_i
//   grad_query_i = query_mask_i tau/2 / m sum_f sum_j [collide] key_mask_j (g_i . v_j) k_j
//   grad_key_j   = key_mask_j tau/2 / m   sum_f sum_i [collide] query_mask_i (g_i . v_j) q_i
// For each hash, keys and queries are sorted by bucket. In the pairwise form a bucket's dot
// products g_i . v_j are formed once and serve both grad_query and grad_key: three small matrix
// products where two weighted cumulations take four. Buckets where it is cheaper take the table
// form (backward_table_is_cheaper in common.h), which bounds the worst case at O(m n d dv). The
// products are those of the weighted cumulation (bucket_products.h).
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../buckets.h"
#include "../checks.h"
#include "../common.h"
#include "bucket_products.h"

namespace yoso {
namespace {

struct BackwardWorker {
  const int32_t* query_codes;  // (bh, n_q, m)
  const int32_t* key_codes;    // (bh, n_k, m)
  const float* query_mask;     // (bh, n_q)
  const float* key_mask;       // (bh, n_k)
  const float* query;          // (bh, n_q, d)
  const float* key;            // (bh, n_k, d)
  const float* value;          // (bh, n_k, dv)
  const float* grad;           // (bh, n_q, dv)
  int64_t n_q, n_k, d, dv, m;
  BucketLists buckets;
  PairwiseProduct pairwise;       // queries read keys: dots g . v, then grad_query
  std::vector<float> packed_q;    // (nq, d): masked queries, read by grad_key through the same dots
  std::vector<float> grad_sum;    // (dv,)
  std::vector<float> table;       // (dv, d), table form
  std::vector<float> acc;         // (d,)

  BackwardWorker(const int32_t* qc, const int32_t* kc, const float* qm, const float* km, const float* q,
                 const float* k, const float* v, const float* g, int64_t n_q_, int64_t n_k_, int64_t d_,
                 int64_t dv_, int64_t m_, int64_t rows)
      : query_codes(qc), key_codes(kc), query_mask(qm), key_mask(km), query(q), key(k), value(v), grad(g),
        n_q(n_q_), n_k(n_k_), d(d_), dv(dv_), m(m_), buckets(rows, n_q_, n_k_), grad_sum(dv_), acc(d_) {}

  // grad_value of the bucket's keys: every key gets the sum of its queries' masked gradients.
  void value_gradient(const float* g, const float* qm, const int32_t* keys, int64_t nk, const int32_t* queries,
                      int64_t nq, float* gv) {
    std::fill(grad_sum.begin(), grad_sum.end(), 0.0f);
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      const float* row = g + i * dv;
      const float mask = qm[i];
#pragma omp simd
      for (int64_t t = 0; t < dv; ++t) grad_sum[t] += mask * row[t];
    }
    for (int64_t a = 0; a < nk; ++a) {
      float* out = gv + static_cast<int64_t>(keys[a]) * dv;
#pragma omp simd
      for (int64_t t = 0; t < dv; ++t) out[t] += grad_sum[t];
    }
  }

  // grad_key_j += sum_i dots_ij masked q_i, from the dots the pairwise product left. With D known
  // two keys go at a time and their accumulators stay in registers.
  template <int64_t D>
  void key_gradient(const float* q, const float* qm, const int32_t* keys, int64_t nk, const int32_t* queries,
                    int64_t nq, float* gk) {
    const int64_t dd = D > 0 ? D : d;
    const int64_t padded = pairwise.padded;
    const float* dots = pairwise.dots.data();
    reserve(packed_q, nq * dd);
    for (int64_t s = 0; s < nq; ++s) {
      const int64_t i = queries[s];
      const float* row = q + i * dd;
      float* pq = packed_q.data() + s * dd;
      const float mask = qm[i];
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) pq[t] = mask * row[t];
    }
    int64_t a = 0;
    if constexpr (D > 0) {
      for (; a + 2 <= nk; a += 2) {
        float acc0[D] = {}, acc1[D] = {};
        for (int64_t s = 0; s < nq; ++s) {
          const float c0 = dots[s * padded + a], c1 = dots[s * padded + a + 1];
          const float* pq = packed_q.data() + s * D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) {
            acc0[t] += c0 * pq[t];
            acc1[t] += c1 * pq[t];
          }
        }
        float* o0 = gk + static_cast<int64_t>(keys[a]) * D;
        float* o1 = gk + static_cast<int64_t>(keys[a + 1]) * D;
#pragma omp simd
        for (int64_t t = 0; t < D; ++t) {
          o0[t] += acc0[t];
          o1[t] += acc1[t];
        }
      }
    }
    for (; a < nk; ++a) {
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t s = 0; s < nq; ++s) {
        const float c0 = dots[s * padded + a];
        const float* pq = packed_q.data() + s * dd;
#pragma omp simd
        for (int64_t t = 0; t < dd; ++t) acc[t] += c0 * pq[t];
      }
      float* o = gk + static_cast<int64_t>(keys[a]) * dd;
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) o[t] += acc[t];
    }
  }

  // Pairwise form with D = d = dv known at compile time (0: run-time widths).
  template <int64_t D>
  void pairwise_form(const float* q, const float* k, const float* v, const float* g, const float* qm,
                     const float* km, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                     float* gq, float* gk) {
    pairwise.pack(dv, d, v, k, km, keys, nk);
    pairwise.dot<D>(dv, g, queries, nq);
    pairwise.apply<D>(d, nk, queries, nq, gq);
    key_gradient<D>(q, qm, keys, nk, queries, nq, gk);
  }

  // Unscaled sums over hashes [f_begin, f_end) of batch*head b into gq (n_q, d), gk (n_k, d), gv (n_k, dv).
  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* gq, float* gk, float* gv) {
    const float* qm = query_mask + b * n_q;
    const float* km = key_mask + b * n_k;
    const float* q = query + b * n_q * d;
    const float* k = key + b * n_k * d;
    const float* v = value + b * n_k * dv;
    const float* g = grad + b * n_q * dv;
    for (int64_t f = f_begin; f < f_end; ++f) {
      const int32_t* qc = query_codes + b * n_q * m + f;  // code of query i: qc[i * m]
      const int32_t* kc = key_codes + b * n_k * m + f;
      const int32_t count = buckets.sort(qc, kc, qm, km, n_q, n_k, m);
      for (int32_t s = 0; s < count; ++s) {
        const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
        if (nq == 0) continue;
        const int32_t* keys = buckets.keys(s);
        const int32_t* queries = buckets.queries(s);
        value_gradient(g, qm, keys, nk, queries, nq, gv);
        if (backward_table_is_cheaper(nq, nk, d, dv)) {
          table_product(table, dv, d, v, k, km, keys, nk, g, queries, nq, gq);
          table_product(table, dv, d, g, q, qm, queries, nq, v, keys, nk, gk);
        } else if (d == dv && d == 64) {
          pairwise_form<64>(q, k, v, g, qm, km, keys, nk, queries, nq, gq, gk);
        } else if (d == dv && d == 32) {
          pairwise_form<32>(q, k, v, g, qm, km, keys, nk, queries, nq, gq, gk);
        } else if (d == dv && d == 128) {
          pairwise_form<128>(q, k, v, g, qm, km, keys, nk, queries, nq, gq, gk);
        } else {
          pairwise_form<0>(q, k, v, g, qm, km, keys, nk, queries, nq, gq, gk);
        }
      }
    }
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> lsh_backward_cpu(
    const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query_mask,
    const at::Tensor& key_mask, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const at::Tensor& grad, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  check_backward_inputs(query_codes, key_codes, query, key, value, grad);
  const int64_t bh = value.size(0), n_k = value.size(1), dv = value.size(2), d = query.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous();
  const at::Tensor kc = key_codes.contiguous();
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous();
  const at::Tensor km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor q = query.to(at::kFloat).contiguous();
  const at::Tensor k = key.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous();
  const at::Tensor g = grad.to(at::kFloat).contiguous();

  const int64_t groups = hash_groups(bh, m);
  const auto options = value.options().dtype(at::kFloat);
  at::Tensor gq = at::zeros({groups, bh, n_q, d}, options);  // one buffer per group of hashes
  at::Tensor gk = at::zeros({groups, bh, n_k, d}, options);
  at::Tensor gv = at::zeros({groups, bh, n_k, dv}, options);
  if (bh > 0 && (n_q > 0 || n_k > 0)) {
    float* gq_ptr = gq.mutable_data_ptr<float>();
    float* gk_ptr = gk.mutable_data_ptr<float>();
    float* gv_ptr = gv.mutable_data_ptr<float>();
    auto make_worker = [&] {
      return BackwardWorker(qc.const_data_ptr<int32_t>(), kc.const_data_ptr<int32_t>(), qm.const_data_ptr<float>(),
                            km.const_data_ptr<float>(), q.const_data_ptr<float>(), k.const_data_ptr<float>(),
                            v.const_data_ptr<float>(), g.const_data_ptr<float>(), n_q, n_k, d, dv, m, rows);
    };
    for_each_hash_group(bh, m, groups, make_worker,
                        [&](BackwardWorker& worker, int64_t b, int64_t grp, int64_t f_begin, int64_t f_end) {
                          const int64_t slot = grp * bh + b;
                          worker(b, f_begin, f_end, gq_ptr + slot * n_q * d, gk_ptr + slot * n_k * d,
                                 gv_ptr + slot * n_k * dv);
                        });
  }
  const double scale = 1.0 / static_cast<double>(m), half_tau = 0.5 * static_cast<double>(hash_code_len);
  return {sum_over_groups(gq, qm, scale * half_tau), sum_over_groups(gk, km, scale * half_tau),
          sum_over_groups(gv, km, scale)};
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_backward", &yoso::lsh_backward_cpu); }
