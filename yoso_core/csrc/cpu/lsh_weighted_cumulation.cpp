// Weighted LSH cumulation on the CPU:
//   out_i = query_mask_i / m sum_f sum_j [collide] key_mask_j (qw_i . kw_j) v_j
// For each hash, keys and queries are grouped by bucket (counting sort). Each bucket then takes
// the cheaper of two exact forms (bucket_table_is_cheaper in common.h):
//   table:    T = sum_j kw_j (x) v_j (w x d), built once, then every query does qw_i^T T;
//   pairwise: a small matrix product, dots = QW_b KW_b^T, then out_b += dots V_b.
// Both are linear in the sequence length for a bounded bucket size; the table form bounds the
// worst case at O(m n w d). Operands of a bucket are packed contiguously, so every inner loop runs
// over a contiguous dimension that the compiler vectorises, with no horizontal reductions.
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "../buckets.h"

namespace yoso {
namespace {

struct WeightedWorker {
  const int32_t* query_codes;   // (bh, n_q, m)
  const int32_t* key_codes;     // (bh, n_k, m)
  const float* query_mask;      // (bh, n_q)
  const float* key_mask;        // (bh, n_k)
  const float* query_weight;    // (bh, n_q, w)
  const float* key_weight;      // (bh, n_k, w)
  const float* value;           // (bh, n_k, d)
  int64_t n_q, n_k, w, d, m, rows;
  BucketLists buckets;
  std::vector<float> table;     // (w, d) for the table form
  std::vector<float> packed_kw; // (w, nk_b): key weights of one bucket, transposed
  std::vector<float> packed_v;  // (nk_b, d): masked values of one bucket
  std::vector<float> dots;      // (nk_b,)
  std::vector<float> dots2;     // (nk_b,): the second query of a pair
  std::vector<float> acc;       // (d,)

  WeightedWorker(const int32_t* qc, const int32_t* kc, const float* qm, const float* km, const float* qw,
                 const float* kw, const float* v, int64_t n_q_, int64_t n_k_, int64_t w_, int64_t d_,
                 int64_t m_, int64_t rows_)
      : query_codes(qc), key_codes(kc), query_mask(qm), key_mask(km), query_weight(qw), key_weight(kw),
        value(v), n_q(n_q_), n_k(n_k_), w(w_), d(d_), m(m_), rows(rows_), buckets(rows_, n_q_, n_k_),
        table(w_ * d_), acc(d_) {}

  void table_form(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                  const float* km, float* out) {
    std::fill(table.begin(), table.end(), 0.0f);
    for (int64_t a = 0; a < nk; ++a) {
      const int64_t j = keys[a];
      const float* kw = key_weight + (b * n_k + j) * w;
      const float* v = value + (b * n_k + j) * d;
      for (int64_t c = 0; c < w; ++c) {
        const float coef = kw[c] * km[j];
        float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) row[t] += coef * v[t];
      }
    }
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = queries[a];
      const float* qw = query_weight + (b * n_q + i) * w;
      float* o = out + i * d;
      for (int64_t c = 0; c < w; ++c) {
        const float coef = qw[c];
        const float* row = table.data() + c * d;
#pragma omp simd
        for (int64_t t = 0; t < d; ++t) o[t] += coef * row[t];
      }
    }
  }

  // Pairwise form with the weight and value widths W, D known at compile time (0: at run time),
  // so that the per-query accumulators live in registers. Keys are packed in blocks of kKeyBlock
  // (zero-padded) so the dot products vectorise over keys without horizontal reductions.
  static constexpr int64_t kKeyBlock = 16;

  template <int64_t W, int64_t D>
  void pairwise_form(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                     const float* km, float* out) {
    const int64_t ww = W > 0 ? W : w, dd = D > 0 ? D : d;
    const int64_t padded = (nk + kKeyBlock - 1) / kKeyBlock * kKeyBlock;
    if (static_cast<int64_t>(packed_v.size()) < padded * dd) packed_v.resize(padded * dd);
    if (static_cast<int64_t>(packed_kw.size()) < padded * ww) packed_kw.resize(padded * ww);
    if (static_cast<int64_t>(dots.size()) < padded) dots.resize(padded);
    // packed_kw: (W, padded) key weights transposed; packed_v: (padded, D) masked values
    for (int64_t c = 0; c < ww; ++c) {  // zero only the padding keys of each column
      std::fill(packed_kw.begin() + c * padded + nk, packed_kw.begin() + (c + 1) * padded, 0.0f);
    }
    for (int64_t a = 0; a < nk; ++a) {
      const int64_t j = keys[a];
      const float* kw = key_weight + (b * n_k + j) * ww;
      const float* v = value + (b * n_k + j) * dd;
      for (int64_t c = 0; c < ww; ++c) packed_kw[c * padded + a] = kw[c];
      float* pv = packed_v.data() + a * dd;
      const float mask = km[j];
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) pv[t] = mask * v[t];
    }
    int64_t q = 0;
    if constexpr (W > 0 && D > 0) {
      // two queries at a time: every packed key weight and value is loaded once for both
      if (static_cast<int64_t>(dots2.size()) < padded) dots2.resize(padded);
      for (; q + 2 <= nq; q += 2) {
        const int64_t i0 = queries[q], i1 = queries[q + 1];
        const float* qw0 = query_weight + (b * n_q + i0) * W;
        const float* qw1 = query_weight + (b * n_q + i1) * W;
        for (int64_t a0 = 0; a0 < padded; a0 += kKeyBlock) {
          float p0[2][kKeyBlock] = {}, p1[2][kKeyBlock] = {};
          for (int64_t c = 0; c < W; c += 2) {
            for (int64_t u = 0; u < 2; ++u) {
              const float c0 = qw0[c + u], c1 = qw1[c + u];
              const float* col = packed_kw.data() + (c + u) * padded + a0;
#pragma omp simd
              for (int64_t a = 0; a < kKeyBlock; ++a) {
                p0[u][a] += c0 * col[a];
                p1[u][a] += c1 * col[a];
              }
            }
          }
#pragma omp simd
          for (int64_t a = 0; a < kKeyBlock; ++a) {
            dots[a0 + a] = p0[0][a] + p0[1][a];
            dots2[a0 + a] = p1[0][a] + p1[1][a];
          }
        }
        float acc0[D] = {}, acc1[D] = {};
        for (int64_t a = 0; a < nk; ++a) {
          const float c0 = dots[a], c1 = dots2[a];
          const float* pv = packed_v.data() + a * D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) {
            acc0[t] += c0 * pv[t];
            acc1[t] += c1 * pv[t];
          }
        }
        float* o0 = out + i0 * D;
        float* o1 = out + i1 * D;
#pragma omp simd
        for (int64_t t = 0; t < D; ++t) {
          o0[t] += acc0[t];
          o1[t] += acc1[t];
        }
      }
    }
    for (; q < nq; ++q) {
      const int64_t i = queries[q];
      const float* qw = query_weight + (b * n_q + i) * ww;
      for (int64_t a0 = 0; a0 < padded; a0 += kKeyBlock) {
        // four independent partial sums over the weight dim keep the FMA units busy
        float part[4][kKeyBlock] = {};
        int64_t c = 0;
        for (; c + 4 <= ww; c += 4) {
          for (int64_t u = 0; u < 4; ++u) {
            const float coef = qw[c + u];
            const float* col = packed_kw.data() + (c + u) * padded + a0;
#pragma omp simd
            for (int64_t a = 0; a < kKeyBlock; ++a) part[u][a] += coef * col[a];
          }
        }
        for (; c < ww; ++c) {
          const float coef = qw[c];
          const float* col = packed_kw.data() + c * padded + a0;
#pragma omp simd
          for (int64_t a = 0; a < kKeyBlock; ++a) part[0][a] += coef * col[a];
        }
#pragma omp simd
        for (int64_t a = 0; a < kKeyBlock; ++a) dots[a0 + a] = (part[0][a] + part[1][a]) + (part[2][a] + part[3][a]);
      }
      float* o = out + i * dd;
      if constexpr (D > 0) {
        // two independent accumulators (even and odd keys) halve the FMA dependency chains
        float even[D] = {}, odd[D] = {};
        int64_t a = 0;
        for (; a + 2 <= nk; a += 2) {
          const float c0 = dots[a], c1 = dots[a + 1];
          const float* p0 = packed_v.data() + a * D;
          const float* p1 = p0 + D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) {
            even[t] += c0 * p0[t];
            odd[t] += c1 * p1[t];
          }
        }
        if (a < nk) {
          const float c0 = dots[a];
          const float* p0 = packed_v.data() + a * D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) even[t] += c0 * p0[t];
        }
#pragma omp simd
        for (int64_t t = 0; t < D; ++t) o[t] += even[t] + odd[t];
      } else {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t a = 0; a < nk; ++a) {
          const float coef = dots[a];
          const float* pv = packed_v.data() + a * dd;
#pragma omp simd
          for (int64_t t = 0; t < dd; ++t) acc[t] += coef * pv[t];
        }
#pragma omp simd
        for (int64_t t = 0; t < dd; ++t) o[t] += acc[t];
      }
    }
  }

  void pairwise(int64_t b, const int32_t* keys, int64_t nk, const int32_t* queries, int64_t nq,
                const float* km, float* out) {
    if (w == 64 && d == 64) return pairwise_form<64, 64>(b, keys, nk, queries, nq, km, out);
    if (w == 32 && d == 32) return pairwise_form<32, 32>(b, keys, nk, queries, nq, km, out);
    if (w == 128 && d == 128) return pairwise_form<128, 128>(b, keys, nk, queries, nq, km, out);
    pairwise_form<0, 0>(b, keys, nk, queries, nq, km, out);
  }

  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* out) {
    const float* qm = query_mask + b * n_q;
    const float* km = key_mask + b * n_k;
    for (int64_t f = f_begin; f < f_end; ++f) {
      const int32_t* qc = query_codes + b * n_q * m + f;  // code of query i: qc[i * m]
      const int32_t* kc = key_codes + b * n_k * m + f;
      const int32_t count = buckets.sort(qc, kc, qm, km, n_q, n_k, m);
      for (int32_t s = 0; s < count; ++s) {
        const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
        if (nq == 0) continue;
        if (bucket_table_is_cheaper(nq, nk, w, d)) {
          table_form(b, buckets.keys(s), nk, buckets.queries(s), nq, km, out);
        } else {
          pairwise(b, buckets.keys(s), nk, buckets.queries(s), nq, km, out);
        }
      }
    }
  }
};

at::Tensor lsh_weighted_cumulation_cpu(const at::Tensor& query_codes, const at::Tensor& key_codes,
                                       const at::Tensor& query_mask, const at::Tensor& key_mask,
                                       const at::Tensor& query_weight, const at::Tensor& key_weight,
                                       const at::Tensor& value, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  check_weights(query_weight, key_weight, query_codes, key_codes);
  const int64_t bh = value.size(0), n_k = value.size(1), d = value.size(2), w = key_weight.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous();  // (bh, n_q, m)
  const at::Tensor kc = key_codes.contiguous();    // (bh, n_k, m)
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous();
  const at::Tensor km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor qw = query_weight.to(at::kFloat).contiguous();
  const at::Tensor kw = key_weight.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous();
  const int32_t* qc_ptr = qc.const_data_ptr<int32_t>();
  const int32_t* kc_ptr = kc.const_data_ptr<int32_t>();
  const float* qm_ptr = qm.const_data_ptr<float>();
  const float* km_ptr = km.const_data_ptr<float>();
  const float* qw_ptr = qw.const_data_ptr<float>();
  const float* kw_ptr = kw.const_data_ptr<float>();
  const float* v_ptr = v.const_data_ptr<float>();
  return accumulate_over_hashes(bh, n_q, d, m, qm, [&] {
    return WeightedWorker(qc_ptr, kc_ptr, qm_ptr, km_ptr, qw_ptr, kw_ptr, v_ptr, n_q, n_k, w, d, m, rows);
  });
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_weighted_cumulation", &yoso::lsh_weighted_cumulation_cpu); }
