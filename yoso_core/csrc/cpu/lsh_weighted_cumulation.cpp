// Weighted LSH cumulation on the CPU:
//   out_i = query_mask_i / m sum_f sum_j [collide] key_mask_j (qw_i . kw_j) v_j
// For each hash, keys and queries are grouped by bucket (counting sort). Each bucket then takes
// the cheaper of two exact forms (bucket_table_is_cheaper in cost_models.h):
//   table:    T = sum_j kw_j (x) v_j (w x d), built once, then every query does qw_i^T T;
//   pairwise: a small matrix product, dots = QW_b KW_b^T, then out_b += dots V_b.
// Both are linear in the sequence length for a bounded bucket size; the table form bounds the
// worst case at O(m n w d). The products are in bucket_products.h, shared with the LSH backward.
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "bucket_products.h"
#include "buckets.h"
#include "cost_models.h"

namespace yoso {
namespace {

// What one weighted cumulation reads: float32 rows, contiguous, with their sizes.
struct WeightedInputs {
  const int32_t* query_codes;  // (bh, n_q, m)
  const int32_t* key_codes;    // (bh, n_k, m)
  const float* query_mask;     // (bh, n_q)
  const float* key_mask;       // (bh, n_k)
  const float* query_weight;   // (bh, n_q, w)
  const float* key_weight;     // (bh, n_k, w)
  const float* value;          // (bh, n_k, d)
  int64_t n_q, n_k, w, d, m;
  int64_t rows;  // rows of one hash's bucket table, 2^hash_code_len
};

struct WeightedWorker : WeightedInputs {
  BucketLists buckets;
  std::vector<float> table;  // (w, d), table form
  PairwiseProduct pairwise;

  explicit WeightedWorker(const WeightedInputs& in) : WeightedInputs(in), buckets(in.rows, in.n_q, in.n_k) {}

  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* out) {
    const float* qm = query_mask + b * n_q;
    const float* km = key_mask + b * n_k;
    const float* qw = query_weight + b * n_q * w;
    const float* kw = key_weight + b * n_k * w;
    const float* v = value + b * n_k * d;
    for (int64_t f = f_begin; f < f_end; ++f) {
      const int32_t* qc = query_codes + b * n_q * m + f;  // code of query i: qc[i * m]
      const int32_t* kc = key_codes + b * n_k * m + f;
      const int32_t count = buckets.sort(qc, kc, qm, km, n_q, n_k, m);
      for (int32_t s = 0; s < count; ++s) {
        const int64_t nk = buckets.keys_in(s), nq = buckets.queries_in(s);
        if (nq == 0) continue;
        if (bucket_table_is_cheaper(nq, nk, w, d)) {
          table_product(table, w, d, kw, v, km, buckets.keys(s), nk, qw, buckets.queries(s), nq, out);
        } else {
          pairwise.run(w, d, kw, v, km, buckets.keys(s), nk, qw, buckets.queries(s), nq, out);
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
  WeightedInputs in;
  in.query_codes = qc.const_data_ptr<int32_t>();
  in.key_codes = kc.const_data_ptr<int32_t>();
  in.query_mask = qm.const_data_ptr<float>();
  in.key_mask = km.const_data_ptr<float>();
  in.query_weight = qw.const_data_ptr<float>();
  in.key_weight = kw.const_data_ptr<float>();
  in.value = v.const_data_ptr<float>();
  in.n_q = n_q, in.n_k = n_k, in.w = w, in.d = d, in.m = m, in.rows = rows;
  return accumulate_over_hashes(bh, n_q, d, m, qm, [&] { return WeightedWorker(in); });
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_weighted_cumulation", &yoso::lsh_weighted_cumulation_cpu); }
