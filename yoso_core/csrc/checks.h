// Input checks shared by the CPU and CUDA operators: each names the tensor, what was expected
// and what came.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/aminmax.h>
#include <c10/util/Exception.h>

#include "common.h"

namespace yoso {

constexpr int64_t kMinHashCodeLen = 1, kMaxHashCodeLen = 16, kMinNumHash = 1, kMaxNumHash = 256;

inline void check_hash_code_len(int64_t hash_code_len) {
  TORCH_CHECK(hash_code_len >= kMinHashCodeLen && hash_code_len <= kMaxHashCodeLen, "yoso: hash_code_len must be in [",
              kMinHashCodeLen, ", ", kMaxHashCodeLen, "], got ", hash_code_len);
}

inline void check_float(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "yoso: ", name,
              " must be a floating tensor (float32, float16 or bfloat16), got ", t.scalar_type());
}

inline void check_rank(const at::Tensor& t, const char* name, int64_t rank, const char* shape) {
  TORCH_CHECK(t.dim() == rank, "yoso: ", name, " must have shape ", shape, ", got ", t.sizes());
}

inline void check_fast_hash_inputs(const at::Tensor& x, const at::Tensor& diagonals, int64_t num_hash,
                                   int64_t hash_code_len) {
  check_hash_code_len(hash_code_len);
  TORCH_CHECK(num_hash >= kMinNumHash && num_hash <= kMaxNumHash, "yoso: num_hash must be in [", kMinNumHash, ", ",
              kMaxNumHash, "], got ", num_hash);
  check_rank(x, "x", 3, "(batch*heads, seq, head_dim)");
  check_float(x, "x");
  check_rank(diagonals, "diagonals", 4, "(batch*heads, rotations, 3, padded_dim)");
  check_float(diagonals, "diagonals");
  const int64_t p = padded_dim(x.size(2));
  TORCH_CHECK(diagonals.size(0) == x.size(0) && diagonals.size(2) == 3 && diagonals.size(3) == p,
              "yoso: diagonals must have shape (", x.size(0), ", rotations, 3, ", p, ") for x of shape ", x.sizes(),
              ", got ", diagonals.sizes());
  const int64_t rotations = num_rotations(x.size(2), num_hash, hash_code_len);
  TORCH_CHECK(diagonals.size(1) >= rotations, "yoso: diagonals must hold at least ", rotations,
              " rotations for num_hash ", num_hash, " and hash_code_len ", hash_code_len, ", got ", diagonals.size(1));
  TORCH_CHECK(diagonals.device() == x.device(), "yoso: diagonals must be on ", x.device(), " like x, got ",
              diagonals.device());
}

inline void check_codes(const at::Tensor& codes, const char* name) {
  check_rank(codes, name, 3, "(batch*heads, seq, num_hash)");
  TORCH_CHECK(codes.scalar_type() == at::kInt, "yoso: ", name, " must be int32, got ", codes.scalar_type());
  TORCH_CHECK(codes.size(2) >= kMinNumHash && codes.size(2) <= kMaxNumHash, "yoso: ", name, " must hold between ",
              kMinNumHash, " and ", kMaxNumHash, " hashes, got ", codes.size(2));
}

// Every code in [0, 2^hash_code_len): one reduction before the kernels run, on either backend, so
// the hot loops index tables without a check and a bad code never reaches a CUDA kernel.
inline void check_code_range(const at::Tensor& codes, const char* name, int64_t hash_code_len) {
  if (codes.numel() == 0) return;
  const auto [low, high] = at::aminmax(codes);
  const int64_t lo = low.item<int64_t>(), hi = high.item<int64_t>(), rows = table_rows(hash_code_len);
  TORCH_CHECK(lo >= 0 && hi < rows, "yoso: ", name, " must lie in [0, ", rows, ") for hash_code_len ", hash_code_len,
              ", got ", lo < 0 ? lo : hi, " (values in [", lo, ", ", hi, "])");
}

inline void check_same_device(const at::Tensor& t, const char* name, const at::Tensor& like) {
  TORCH_CHECK(t.device() == like.device(), "yoso: ", name, " must be on ", like.device(), " like query_codes, got ",
              t.device());
}

// Codes, masks and a (bh, n_k, d) value of the cumulation operators.
inline void check_cumulation_inputs(const at::Tensor& query_codes, const at::Tensor& key_codes,
                                    const at::Tensor& query_mask, const at::Tensor& key_mask, const at::Tensor& value,
                                    int64_t hash_code_len) {
  check_hash_code_len(hash_code_len);
  check_codes(query_codes, "query_codes");
  check_codes(key_codes, "key_codes");
  const int64_t bh = query_codes.size(0), n_q = query_codes.size(1), n_k = key_codes.size(1);
  const int64_t m = query_codes.size(2);
  TORCH_CHECK(key_codes.size(0) == bh && key_codes.size(2) == m, "yoso: key_codes must have shape (", bh, ", seq, ", m,
              ") like query_codes ", query_codes.sizes(), ", got ", key_codes.sizes());
  check_rank(query_mask, "query_mask", 2, "(batch*heads, seq)");
  check_rank(key_mask, "key_mask", 2, "(batch*heads, seq)");
  check_float(query_mask, "query_mask");
  check_float(key_mask, "key_mask");
  TORCH_CHECK(query_mask.size(0) == bh && query_mask.size(1) == n_q, "yoso: query_mask must have shape (", bh, ", ",
              n_q, "), got ", query_mask.sizes());
  TORCH_CHECK(key_mask.size(0) == bh && key_mask.size(1) == n_k, "yoso: key_mask must have shape (", bh, ", ", n_k,
              "), got ", key_mask.sizes());
  check_rank(value, "value", 3, "(batch*heads, seq, head_dim)");
  check_float(value, "value");
  TORCH_CHECK(value.size(0) == bh && value.size(1) == n_k, "yoso: value must have shape (", bh, ", ", n_k,
              ", head_dim) like key_codes, got ", value.sizes());
  check_same_device(key_codes, "key_codes", query_codes);
  check_same_device(query_mask, "query_mask", query_codes);
  check_same_device(key_mask, "key_mask", query_codes);
  check_same_device(value, "value", query_codes);
  check_code_range(query_codes, "query_codes", hash_code_len);
  check_code_range(key_codes, "key_codes", hash_code_len);
}

inline void check_weights(const at::Tensor& query_weight, const at::Tensor& key_weight, const at::Tensor& query_codes,
                          const at::Tensor& key_codes) {
  check_rank(query_weight, "query_weight", 3, "(batch*heads, seq, weight_dim)");
  check_rank(key_weight, "key_weight", 3, "(batch*heads, seq, weight_dim)");
  check_float(query_weight, "query_weight");
  check_float(key_weight, "key_weight");
  const int64_t bh = query_codes.size(0);
  TORCH_CHECK(query_weight.size(0) == bh && query_weight.size(1) == query_codes.size(1),
              "yoso: query_weight must have shape (", bh, ", ", query_codes.size(1), ", weight_dim), got ",
              query_weight.sizes());
  TORCH_CHECK(key_weight.size(0) == bh && key_weight.size(1) == key_codes.size(1), "yoso: key_weight must have shape (",
              bh, ", ", key_codes.size(1), ", weight_dim), got ", key_weight.sizes());
  TORCH_CHECK(key_weight.size(2) == query_weight.size(2), "yoso: key_weight must have weight_dim ",
              query_weight.size(2), " like query_weight, got ", key_weight.size(2));
  check_same_device(query_weight, "query_weight", query_codes);
  check_same_device(key_weight, "key_weight", query_codes);
}

// Query, key and output gradient of the LSH backward, against the codes and the value.
inline void check_backward_inputs(const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query,
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
  TORCH_CHECK(key.size(0) == bh && key.size(1) == n_k && key.size(2) == query.size(2), "yoso: key must have shape (",
              bh, ", ", n_k, ", ", query.size(2), ") like key_codes and query, got ", key.sizes());
  TORCH_CHECK(grad.size(0) == bh && grad.size(1) == n_q && grad.size(2) == value.size(2),
              "yoso: grad must have shape (", bh, ", ", n_q, ", ", value.size(2), ") like query_codes and value, got ",
              grad.sizes());
  check_same_device(query, "query", query_codes);
  check_same_device(key, "key", query_codes);
  check_same_device(grad, "grad", query_codes);
}

}  // namespace yoso
