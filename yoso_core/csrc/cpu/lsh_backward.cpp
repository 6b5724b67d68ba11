// LSH backward of sampled YOSO on the CPU: the three gradients in one pass over the buckets,
//   grad_value_j = key_mask_j / m         sum_f sum_i [collide] query_mask_i g_i
//   grad_query_i = query_mask_i tau/2 / m sum_f sum_j [collide] key_mask_j (g_i . v_j) k_j
//   grad_key_j   = key_mask_j tau/2 / m   sum_f sum_i [collide] query_mask_i (g_i . v_j) q_i
// For each hash, keys and queries are sorted by bucket. A bucket's dot products g_i . v_j are formed
// once and serve both grad_query and grad_key: three small matrix products where two weighted
// cumulations take four. Buckets where it is cheaper take the table form, the sums of v (x) k and
// g (x) q over the bucket (backward_table_is_cheaper in common.h), which bounds the worst case at
// O(m n d dv). Operands are packed per bucket so every inner loop runs over a contiguous dimension.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>
#include <vector>

#include "../buckets.h"
#include "../checks.h"
#include "../common.h"

namespace yoso {
namespace {

constexpr int64_t kKeyBlock = 16;  // keys per vector of dot products (one AVX-512 register)

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
  std::vector<float> packed_vt;  // (dv, padded): values of the bucket's keys, transposed
  std::vector<float> packed_k;   // (nk, d): masked keys
  std::vector<float> packed_g;   // (nq, dv): output gradients of the bucket's queries
  std::vector<float> packed_q;   // (nq, d): masked queries
  std::vector<float> dots;       // (nq, padded): g_i . v_j
  std::vector<float> grad_sum;   // (dv,)
  std::vector<float> table;      // (dv, d), table form
  std::vector<float> acc;        // (d,)

  BackwardWorker(const int32_t* qc, const int32_t* kc, const float* qm, const float* km, const float* q,
                 const float* k, const float* v, const float* g, int64_t n_q_, int64_t n_k_, int64_t d_,
                 int64_t dv_, int64_t m_, int64_t rows)
      : query_codes(qc), key_codes(kc), query_mask(qm), key_mask(km), query(q), key(k), value(v), grad(g),
        n_q(n_q_), n_k(n_k_), d(d_), dv(dv_), m(m_), buckets(rows, n_q_, n_k_), grad_sum(dv_),
        table(dv_ * d_), acc(d_) {}

  // Rows are read and written at random token positions, so the time goes to cache misses unless
  // the next buckets' rows are fetched while this one computes. GCC deletes loops whose only work
  // is __builtin_prefetch, so on x86 the prefetch is an asm statement it must keep.
  static void prefetch_rows(const float* base, const int32_t* index, int64_t count, int64_t width) {
    const int64_t bytes = width * static_cast<int64_t>(sizeof(float));
    for (int64_t a = 0; a < count; ++a) {
      const char* row = reinterpret_cast<const char*>(base + static_cast<int64_t>(index[a]) * width);
      for (int64_t byte = 0; byte < bytes; byte += 64) {
#if defined(__x86_64__) || defined(__i386__)
        asm volatile("prefetcht0 %0" : : "m"(row[byte]));
#else
        __builtin_prefetch(row + byte);
#endif
      }
    }
  }

  void prefetch_bucket(int64_t b, int32_t s, const float* gq, const float* gk, const float* gv) {
    const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
    if (nq == 0) return;
    const int32_t* keys = buckets.keys(s);
    const int32_t* queries = buckets.queries(s);
    prefetch_rows(key + b * n_k * d, keys, nk, d);
    prefetch_rows(value + b * n_k * dv, keys, nk, dv);
    prefetch_rows(query + b * n_q * d, queries, nq, d);
    prefetch_rows(grad + b * n_q * dv, queries, nq, dv);
    prefetch_rows(gq, queries, nq, d);
    prefetch_rows(gk, keys, nk, d);
    prefetch_rows(gv, keys, nk, dv);
  }

  // grad_value of the bucket's keys: every key gets the sum of its queries' masked gradients.
  void value_gradient(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                      const float* qm, float* gv) {
    std::fill(grad_sum.begin(), grad_sum.end(), 0.0f);
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      const float* g = grad + (b * n_q + i) * dv;
      const float mask = qm[i];
#pragma omp simd
      for (int64_t t = 0; t < dv; ++t) grad_sum[t] += mask * g[t];
    }
    for (int64_t a = 0; a < nk; ++a) {
      float* out = gv + static_cast<int64_t>(keys[a]) * dv;
#pragma omp simd
      for (int64_t t = 0; t < dv; ++t) out[t] += grad_sum[t];
    }
  }

  // Table form: grad_query_i += g_i^T (sum_j v_j (x) k_j), grad_key_j += v_j^T (sum_i g_i (x) q_i).
  void table_form(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                  const float* qm, const float* km, float* gq, float* gk) {
    std::fill(table.begin(), table.end(), 0.0f);
    for (int64_t a = 0; a < nk; ++a) {
      const int64_t j = keys[a];
      const float* v = value + (b * n_k + j) * dv;
      const float* k = key + (b * n_k + j) * d;
      for (int64_t c = 0; c < dv; ++c) {
        const float coef = v[c] * km[j];
        float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) row[t] += coef * k[t];
      }
    }
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      const float* g = grad + (b * n_q + i) * dv;
      float* out = gq + i * d;
      for (int64_t c = 0; c < dv; ++c) {
        const float coef = g[c];
        const float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) out[t] += coef * row[t];
      }
    }
    std::fill(table.begin(), table.end(), 0.0f);
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      const float* g = grad + (b * n_q + i) * dv;
      const float* q = query + (b * n_q + i) * d;
      for (int64_t c = 0; c < dv; ++c) {
        const float coef = g[c] * qm[i];
        float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) row[t] += coef * q[t];
      }
    }
    for (int64_t a = 0; a < nk; ++a) {
      const int64_t j = keys[a];
      const float* v = value + (b * n_k + j) * dv;
      float* out = gk + j * d;
      for (int64_t c = 0; c < dv; ++c) {
        const float coef = v[c];
        const float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) out[t] += coef * row[t];
      }
    }
  }

  template <typename T>
  static void reserve(std::vector<T>& buffer, int64_t size) {
    if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(size);
  }

  // Pairwise form with D = d = dv known at compile time (0: run-time d and dv). With D known, the
  // per-row accumulators live in registers and rows are taken two at a time, so every packed row
  // loaded serves two accumulators.
  template <int64_t D>
  void pairwise_form(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                     const float* qm, const float* km, float* gq, float* gk) {
    const int64_t dd = D > 0 ? D : d, ee = D > 0 ? D : dv;
    const int64_t padded = (nk + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
    reserve(packed_vt, ee * padded);
    reserve(packed_k, nk * dd);
    reserve(packed_g, nq * ee);
    reserve(packed_q, nq * dd);
    reserve(dots, nq * padded);
    for (int64_t c = 0; c < ee; ++c) {  // zero only the padding keys of each column
      std::fill(packed_vt.begin() + c * padded + nk, packed_vt.begin() + (c + 1) * padded, 0.0f);
    }
    for (int64_t a = 0; a < nk; ++a) {
      const int64_t j = keys[a];
      const float* v = value + (b * n_k + j) * ee;
      for (int64_t c = 0; c < ee; ++c) packed_vt[c * padded + a] = v[c];
      const float* k = key + (b * n_k + j) * dd;
      float* pk = packed_k.data() + a * dd;
      const float mask = km[j];
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) pk[t] = mask * k[t];
    }
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      std::copy_n(grad + (b * n_q + i) * ee, ee, packed_g.data() + a * ee);
      const float* q = query + (b * n_q + i) * dd;
      float* pq = packed_q.data() + a * dd;
      const float mask = qm[i];
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) pq[t] = mask * q[t];
    }

    // dots (nq, padded) = packed_g (nq, ee) packed_vt (ee, padded), one block of keys at a time
    int64_t r = 0;
    if constexpr (D > 0) {
      for (; r + 2 <= nq; r += 2) {
        const float* g0 = packed_g.data() + r * D;
        const float* g1 = g0 + D;
        for (int64_t a0 = 0; a0 < padded; a0 += kKeyBlock) {
          float p0[2][kKeyBlock] = {}, p1[2][kKeyBlock] = {};
          for (int64_t c = 0; c < D; c += 2) {
            for (int64_t u = 0; u < 2; ++u) {
              const float c0 = g0[c + u], c1 = g1[c + u];
              const float* col = packed_vt.data() + (c + u) * padded + a0;
#pragma omp simd
              for (int64_t a = 0; a < kKeyBlock; ++a) {
                p0[u][a] += c0 * col[a];
                p1[u][a] += c1 * col[a];
              }
            }
          }
          float* d0 = dots.data() + r * padded + a0;
          float* d1 = d0 + padded;
#pragma omp simd
          for (int64_t a = 0; a < kKeyBlock; ++a) {
            d0[a] = p0[0][a] + p0[1][a];
            d1[a] = p1[0][a] + p1[1][a];
          }
        }
      }
    }
    for (; r < nq; ++r) {
      const float* g = packed_g.data() + r * ee;
      for (int64_t a0 = 0; a0 < padded; a0 += kKeyBlock) {
        float part[kKeyBlock] = {};
        for (int64_t c = 0; c < ee; ++c) {
          const float coef = g[c];
          const float* col = packed_vt.data() + c * padded + a0;
#pragma omp simd
          for (int64_t a = 0; a < kKeyBlock; ++a) part[a] += coef * col[a];
        }
        std::copy_n(part, kKeyBlock, dots.data() + r * padded + a0);
      }
    }

    // grad_query_i += sum_j dots_ij k_j
    r = 0;
    if constexpr (D > 0) {
      for (; r + 2 <= nq; r += 2) {
        const float* d0 = dots.data() + r * padded;
        const float* d1 = d0 + padded;
        float acc0[D] = {}, acc1[D] = {};
        for (int64_t a = 0; a < nk; ++a) {
          const float c0 = d0[a], c1 = d1[a];
          const float* pk = packed_k.data() + a * D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) {
            acc0[t] += c0 * pk[t];
            acc1[t] += c1 * pk[t];
          }
        }
        float* o0 = gq + static_cast<int64_t>(queries[r]) * D;
        float* o1 = gq + static_cast<int64_t>(queries[r + 1]) * D;
#pragma omp simd
        for (int64_t t = 0; t < D; ++t) {
          o0[t] += acc0[t];
          o1[t] += acc1[t];
        }
      }
    }
    for (; r < nq; ++r) {
      const float* d0 = dots.data() + r * padded;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t a = 0; a < nk; ++a) {
        const float c0 = d0[a];
        const float* pk = packed_k.data() + a * dd;
#pragma omp simd
        for (int64_t t = 0; t < dd; ++t) acc[t] += c0 * pk[t];
      }
      float* o = gq + static_cast<int64_t>(queries[r]) * dd;
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) o[t] += acc[t];
    }

    // grad_key_j += sum_i dots_ij q_i
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

  void pairwise(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                const float* qm, const float* km, float* gq, float* gk) {
    if (d == dv) {
      if (d == 64) return pairwise_form<64>(b, keys, nk, queries, nq, qm, km, gq, gk);
      if (d == 32) return pairwise_form<32>(b, keys, nk, queries, nq, qm, km, gq, gk);
      if (d == 128) return pairwise_form<128>(b, keys, nk, queries, nq, qm, km, gq, gk);
    }
    pairwise_form<0>(b, keys, nk, queries, nq, qm, km, gq, gk);
  }

  // Unscaled sums over hashes [f_begin, f_end) of batch*head b into gq (n_q, d), gk (n_k, d), gv (n_k, dv).
  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* gq, float* gk, float* gv) {
    const float* qm = query_mask + b * n_q;
    const float* km = key_mask + b * n_k;
    for (int64_t f = f_begin; f < f_end; ++f) {
      const int32_t* qc = query_codes + b * n_q * m + f;  // code of query i: qc[i * m]
      const int32_t* kc = key_codes + b * n_k * m + f;
      const int32_t count = buckets.sort(qc, kc, qm, km, n_q, n_k, m);
      for (int32_t s = 0; s < std::min<int32_t>(count, 2); ++s) prefetch_bucket(b, s, gq, gk, gv);
      for (int32_t s = 0; s < count; ++s) {
        if (s + 2 < count) prefetch_bucket(b, s + 2, gq, gk, gv);
        const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
        if (nq == 0) continue;
        const int32_t* keys = buckets.keys(s);
        const int32_t* queries = buckets.queries(s);
        value_gradient(b, keys, nk, queries, nq, qm, gv);
        if (backward_table_is_cheaper(nq, nk, d, dv)) {
          table_form(b, keys, nk, queries, nq, qm, km, gq, gk);
        } else {
          pairwise(b, keys, nk, queries, nq, qm, km, gq, gk);
        }
      }
    }
  }
};

void check_backward_inputs(const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query,
                           const at::Tensor& key, const at::Tensor& value, const at::Tensor& grad) {
  const int64_t bh = query_codes.size(0), n_q = query_codes.size(1), n_k = key_codes.size(1);
  check_rank(query, "query", 3, "(batch*heads, seq, head_dim)");
  check_rank(key, "key", 3, "(batch*heads, seq, head_dim)");
  check_rank(grad, "grad", 3, "(batch*heads, seq, head_dim)");
  check_float(query, "query");
  check_float(key, "key");
  check_float(grad, "grad");
  TORCH_CHECK(query.size(0) == bh && query.size(1) == n_q, "yoso: query must have shape (", bh, ", ", n_q,
              ", head_dim) like query_codes, got ", query.sizes());
  TORCH_CHECK(key.size(0) == bh && key.size(1) == n_k && key.size(2) == query.size(2),
              "yoso: key must have shape (", bh, ", ", n_k, ", ", query.size(2), ") like key_codes and query, got ",
              key.sizes());
  TORCH_CHECK(grad.size(0) == bh && grad.size(1) == n_q && grad.size(2) == value.size(2),
              "yoso: grad must have shape (", bh, ", ", n_q, ", ", value.size(2),
              ") like query_codes and value, got ", grad.sizes());
  check_same_device(query, "query", query_codes);
  check_same_device(key, "key", query_codes);
  check_same_device(grad, "grad", query_codes);
}

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

  // Tasks are (batch*head, group of hashes); each writes its own buffers, so no atomics. Hashes
  // are split into groups only when there are fewer batch*heads than threads.
  const int64_t threads = at::get_num_threads();
  const int64_t groups = std::min(m, std::max<int64_t>(1, (threads + bh - 1) / bh));
  const auto options = value.options().dtype(at::kFloat);
  at::Tensor gq = at::zeros({groups, bh, n_q, d}, options);
  at::Tensor gk = at::zeros({groups, bh, n_k, d}, options);
  at::Tensor gv = at::zeros({groups, bh, n_k, dv}, options);
  if (bh > 0 && m > 0 && (n_q > 0 || n_k > 0)) {
    float* gq_ptr = gq.mutable_data_ptr<float>();
    float* gk_ptr = gk.mutable_data_ptr<float>();
    float* gv_ptr = gv.mutable_data_ptr<float>();
    at::parallel_for(0, bh * groups, 1, [&](int64_t begin, int64_t end) {
      BackwardWorker worker(qc.const_data_ptr<int32_t>(), kc.const_data_ptr<int32_t>(), qm.const_data_ptr<float>(),
                            km.const_data_ptr<float>(), q.const_data_ptr<float>(), k.const_data_ptr<float>(),
                            v.const_data_ptr<float>(), g.const_data_ptr<float>(), n_q, n_k, d, dv, m, rows);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / groups, grp = task % groups;
        const int64_t f_begin = grp * m / groups, f_end = (grp + 1) * m / groups;
        const int64_t slot = grp * bh + b;
        worker(b, f_begin, f_end, gq_ptr + slot * n_q * d, gk_ptr + slot * n_k * d, gv_ptr + slot * n_k * dv);
      }
    });
  }
  const double scale = 1.0 / static_cast<double>(m), half_tau = 0.5 * static_cast<double>(hash_code_len);
  at::Tensor grad_query = (groups == 1 ? gq.select(0, 0) : gq.sum(0)).mul_(qm.unsqueeze(-1).mul(scale * half_tau));
  at::Tensor grad_key = (groups == 1 ? gk.select(0, 0) : gk.sum(0)).mul_(km.unsqueeze(-1).mul(scale * half_tau));
  at::Tensor grad_value = (groups == 1 ? gv.select(0, 0) : gv.sum(0)).mul_(km.unsqueeze(-1).mul(scale));
  return {grad_query, grad_key, grad_value};
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_backward", &yoso::lsh_backward_cpu); }
