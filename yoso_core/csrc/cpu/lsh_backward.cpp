// LSH backward of sampled YOSO on the CPU: the three gradients in one pass over the buckets,
//   grad_value_j = key_mask_j / m         sum_f sum_i [collide] query_mask_i g_i
//   grad_query_i = query_mask_i tau/2 / m sum_f sum_j [collide] key_mask_j (g_i . v_j) k_j
//   grad_key_j   = key_mask_j tau/2 / m   sum_f sum_i [collide] query_mask_i (g_i . v_j) q_i
// For each hash, keys and queries are counting-sorted by bucket; each bucket's rows are gathered
// contiguously (and widened to float32 if they are bfloat16 or float16), so the in-bucket work is
// small dense matrix products (block_gemm.h), whose results are added straight into the gradient
// rows. Pairwise form: D = G V^T (nq x nk) is formed once and serves both grad_query (D K) and
// grad_key (D^T Q). Table form, for buckets where it is cheaper (backward_table_is_cheaper in
// cost_models.h): T1 = V^T K and T2 = G^T Q (dv x d), then G T1 and V T2, which bounds the worst case at
// O(m n d dv). grad_value is the bucket's summed query gradient, added to each of its keys.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "block_gemm.h"
#include "bucket_products.h"
#include "buckets.h"
#include "cost_models.h"

namespace yoso {
namespace {

// Buckets with at most this many keys take the direct form (one pair at a time): padded to 16 keys,
// the matrix products would mostly multiply zeros.
constexpr int64_t kSmallBucket = 4;

// What one backward reads: codes, float32 masks and the four row tensors, contiguous, with their sizes.
template <typename scalar_t>
struct BackwardInputs {
  const int32_t* query_codes;  // (bh, n_q, m)
  const int32_t* key_codes;    // (bh, n_k, m)
  const float* query_mask;     // (bh, n_q)
  const float* key_mask;       // (bh, n_k)
  const scalar_t* query;       // (bh, n_q, d)
  const scalar_t* grad;        // (bh, n_q, dv)
  const scalar_t* key;         // (bh, n_k, d)
  const scalar_t* value;       // (bh, n_k, dv)
  int64_t n_q, n_k, d, dv, m;
  int64_t rows;  // rows of one hash's bucket table, 2^hash_code_len
};

template <typename scalar_t>
struct BackwardWorker {
  const BackwardInputs<scalar_t> in;
  BucketLists buckets;
  // one bucket's rows, gathered contiguously in float32
  std::vector<float> packed_g;      // (nq, dv): output gradients
  std::vector<float> packed_q;      // (nq, d): masked queries
  std::vector<float> packed_k;      // (nk, d): masked keys
  std::vector<float> packed_vt;     // (dv, nk rounded up to 16): values transposed, zero-padded
  std::vector<float> dots;          // (nq, nk rounded up): g_i . v_j
  std::vector<float> table;         // (dv, d): table form
  std::vector<float> grad_sums;     // (buckets, dv): each bucket's sum of masked query gradients
  std::vector<int32_t> key_bucket;  // (n_k,): bucket of each key, -1 when masked
  std::vector<float> row;           // (16, dv): a tile of values being transposed

  explicit BackwardWorker(const BackwardInputs<scalar_t>& inputs)
      : in(inputs), buckets(inputs.rows, inputs.n_q, inputs.n_k), key_bucket(inputs.n_k), row(kVec * inputs.dv) {}

  // Gathers the bucket's rows; returns the padded key count (columns of packed_vt and dots), 0 for
  // the direct form of small buckets.
  // ... and sums the bucket's masked query gradients into grad_sum (dv,).
  int64_t gather(const scalar_t* q, const scalar_t* g, const scalar_t* k, const scalar_t* v, const float* qm,
                 const float* km, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                 float* grad_sum) {
    const int64_t d = in.d, dv = in.dv;
    const int64_t padded = (nk + kVec - 1) / kVec * kVec;
    reserve(packed_g, nq * dv);
    reserve(packed_q, nq * d);
    reserve(packed_k, nk * d);
    reserve(packed_vt, dv * padded);
    std::fill(grad_sum, grad_sum + dv, 0.0f);
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      float* pg = packed_g.data() + a * dv;
      load_row(g + i * dv, pg, dv, 1.0f);
      load_row(q + i * d, packed_q.data() + a * d, d, qm[i]);
      const float mask = qm[i];
#pragma omp simd
      for (int64_t t = 0; t < dv; ++t) grad_sum[t] += mask * pg[t];
    }
    if (nk <= kSmallBucket) {  // direct form: values stay row-major (nk, dv) in packed_vt
      for (int64_t a = 0; a < nk; ++a) {
        const int64_t j = keys[a];
        load_row(k + j * d, packed_k.data() + a * d, d, km[j]);
        load_row(v + j * dv, packed_vt.data() + a * dv, dv, 1.0f);
      }
      return 0;
    }
    // values 16 keys at a time: rows into a tile (zero past the last key), then the tile transposed
    float* tile = row.data();
    for (int64_t a0 = 0; a0 < padded; a0 += kVec) {
      for (int64_t a = a0; a < a0 + kVec; ++a) {
        float* dst = tile + (a - a0) * dv;
        if (a < nk) {
          const int64_t j = keys[a];
          load_row(k + j * d, packed_k.data() + a * d, d, km[j]);
          load_row(v + j * dv, dst, dv, 1.0f);
        } else {
          std::fill(dst, dst + dv, 0.0f);
        }
      }
      for (int64_t c = 0; c < dv; ++c) {
        float* out = packed_vt.data() + c * padded + a0;
#pragma omp simd
        for (int64_t a = 0; a < kVec; ++a) out[a] = tile[a * dv + c];
      }
    }
    return padded;
  }

  // The bucket's contribution to gq (n_q, d) and gk (n_k, d).
  void bucket(const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq, int64_t padded, float* gq,
              float* gk) {
    const int64_t d = in.d, dv = in.dv;
    const float* pg = packed_g.data();
    const float* pq = packed_q.data();
    const float* pk = packed_k.data();
    const float* pvt = packed_vt.data();
    if (nk <= kSmallBucket) {  // a few keys: dot products one pair at a time, no padding to 16 keys
      for (int64_t a = 0; a < nq; ++a) {
        float* oq = gq + static_cast<int64_t>(queries[a]) * d;
        const float* ga = pg + a * dv;
        const float* qa = pq + a * d;
        for (int64_t b = 0; b < nk; ++b) {
          const float* vb = pvt + b * dv;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t t = 0; t < dv; ++t) dot += ga[t] * vb[t];
          const float* kb = pk + b * d;
          float* ok = gk + static_cast<int64_t>(keys[b]) * d;
#pragma omp simd
          for (int64_t t = 0; t < d; ++t) {
            oq[t] += dot * kb[t];
            ok[t] += dot * qa[t];
          }
        }
      }
      return;
    }
    auto query_row = [&](int64_t a) { return gq + static_cast<int64_t>(queries[a]) * d; };
    auto key_row = [&](int64_t a) { return gk + static_cast<int64_t>(keys[a]) * d; };
    if (backward_table_is_cheaper(nq, nk, d, dv)) {
      reserve(table, dv * d);
      float* t = table.data();
      auto table_row = [&](int64_t c) { return t + c * d; };
      gemm<false>(dv, d, nk, pvt, padded, 1, pk, d, table_row);  // T1 = V^T K
      gemm<true>(nq, d, dv, pg, dv, 1, t, d, query_row);         // grad_query += G T1
      gemm<false>(dv, d, nq, pg, 1, dv, pq, d, table_row);       // T2 = G^T Q
      gemm<true>(nk, d, dv, pvt, 1, padded, t, d, key_row);      // grad_key += V T2
      return;
    }
    reserve(dots, nq * padded);
    float* dp = dots.data();
    auto dots_row = [&](int64_t a) { return dp + a * padded; };
    gemm<false>(nq, padded, dv, pg, dv, 1, pvt, padded, dots_row);  // D = G V^T
    gemm<true>(nq, d, nk, dp, padded, 1, pk, d, query_row);         // grad_query += D K
    gemm<true>(nk, d, nq, dp, 1, padded, pq, d, key_row);           // grad_key += D^T Q
  }

  // Unscaled sums over hashes [f_begin, f_end) of batch*head b into gq (n_q, d), gk (n_k, d), gv (n_k, dv).
  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* gq, float* gk, float* gv) {
    const int64_t n_q = in.n_q, n_k = in.n_k, d = in.d, dv = in.dv, m = in.m;
    const float* qm = in.query_mask + b * n_q;
    const float* km = in.key_mask + b * n_k;
    const scalar_t* q = in.query + b * n_q * d;
    const scalar_t* g = in.grad + b * n_q * dv;
    const scalar_t* k = in.key + b * n_k * d;
    const scalar_t* v = in.value + b * n_k * dv;
    std::fill(gq, gq + n_q * d, 0.0f);  // zeroed by the thread that fills them, while they are in its cache
    std::fill(gk, gk + n_k * d, 0.0f);
    std::fill(gv, gv + n_k * dv, 0.0f);
    for (int64_t f = f_begin; f < f_end; ++f) {
      const int32_t* qc = in.query_codes + b * n_q * m + f;  // code of query i: qc[i * m]
      const int32_t* kc = in.key_codes + b * n_k * m + f;
      const int32_t count = buckets.sort(qc, kc, qm, km, n_q, n_k, m, key_bucket.data());
      reserve(grad_sums, static_cast<int64_t>(count) * dv);
      for (int32_t s = 0; s < count; ++s) {
        const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
        float* grad_sum = grad_sums.data() + static_cast<int64_t>(s) * dv;
        if (nq == 0) {
          std::fill(grad_sum, grad_sum + dv, 0.0f);
          continue;
        }
        const int32_t* keys = buckets.keys(s);
        const int32_t* queries = buckets.queries(s);
        const int64_t padded = gather(q, g, k, v, qm, km, keys, nk, queries, nq, grad_sum);
        bucket(keys, nk, queries, nq, padded, gq, gk);
      }
      // grad_value in key order: a stream through gv instead of a random visit per key
      for (int64_t j = 0; j < n_k; ++j) {
        if (key_bucket[j] < 0) continue;
        const float* sum = grad_sums.data() + static_cast<int64_t>(key_bucket[j]) * dv;
        float* out = gv + j * dv;
#pragma omp simd
        for (int64_t t = 0; t < dv; ++t) out[t] += sum[t];
      }
    }
  }
};

std::tuple<at::Tensor, at::Tensor, at::Tensor> lsh_backward_cpu(const at::Tensor& query_codes,
                                                                const at::Tensor& key_codes,
                                                                const at::Tensor& query_mask,
                                                                const at::Tensor& key_mask, const at::Tensor& query,
                                                                const at::Tensor& key, const at::Tensor& value,
                                                                const at::Tensor& grad, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  check_backward_inputs(query_codes, key_codes, query, key, value, grad);
  const int64_t bh = value.size(0), n_k = value.size(1), dv = value.size(2), d = query.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous();
  const at::Tensor kc = key_codes.contiguous();
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous();
  const at::Tensor km = key_mask.to(at::kFloat).contiguous();
  // one element type for the four row tensors: theirs when they agree, else float32
  at::Tensor q = rows_of(query), k = rows_of(key), v = rows_of(value), g = rows_of(grad);
  if (k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type() || g.scalar_type() != q.scalar_type()) {
    q = q.to(at::kFloat), k = k.to(at::kFloat), v = v.to(at::kFloat), g = g.to(at::kFloat);
  }

  const int64_t groups = hash_groups(bh, m);
  const auto options = value.options().dtype(at::kFloat);
  // one buffer per group of hashes, zeroed by its task (or here, when there is no task)
  at::Tensor gq = empty_huge({groups, bh, n_q, d}, options);
  at::Tensor gk = empty_huge({groups, bh, n_k, d}, options);
  at::Tensor gv = empty_huge({groups, bh, n_k, dv}, options);
  if (bh == 0 || (n_q == 0 && n_k == 0)) {
    gq.zero_(), gk.zero_(), gv.zero_();
  } else {
    float* gq_ptr = gq.mutable_data_ptr<float>();
    float* gk_ptr = gk.mutable_data_ptr<float>();
    float* gv_ptr = gv.mutable_data_ptr<float>();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, q.scalar_type(), "yoso_lsh_backward_cpu", [&] {
      BackwardInputs<scalar_t> in;
      in.query_codes = qc.const_data_ptr<int32_t>();
      in.key_codes = kc.const_data_ptr<int32_t>();
      in.query_mask = qm.const_data_ptr<float>();
      in.key_mask = km.const_data_ptr<float>();
      in.query = q.const_data_ptr<scalar_t>();
      in.grad = g.const_data_ptr<scalar_t>();
      in.key = k.const_data_ptr<scalar_t>();
      in.value = v.const_data_ptr<scalar_t>();
      in.n_q = n_q, in.n_k = n_k, in.d = d, in.dv = dv, in.m = m, in.rows = rows;
      auto make_worker = [&] { return BackwardWorker<scalar_t>(in); };
      for_each_hash_group(
          bh, m, groups, make_worker,
          [&](BackwardWorker<scalar_t>& worker, int64_t b, int64_t grp, int64_t f_begin, int64_t f_end) {
            const int64_t slot = grp * bh + b;
            worker(b, f_begin, f_end, gq_ptr + slot * n_q * d, gk_ptr + slot * n_k * d, gv_ptr + slot * n_k * dv);
          });
    });
  }
  const double scale = 1.0 / static_cast<double>(m), half_tau = 0.5 * static_cast<double>(hash_code_len);
  return {sum_over_groups(gq, qm, scale * half_tau), sum_over_groups(gk, km, scale * half_tau),
          sum_over_groups(gv, km, scale)};
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_backward", &yoso::lsh_backward_cpu); }
