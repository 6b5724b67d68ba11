// Schemas of every yoso operator. Implementations live in cpu/*.cpp and cuda/*.cu, each ending with
// its TORCH_LIBRARY_IMPL; fake (meta) implementations are registered from Python
// (yoso_core/attention/ops.py). Randomness (the +-1 diagonals) comes in as tensors, so every
// operator is a deterministic function of its inputs.
#include <torch/library.h>

TORCH_LIBRARY(yoso, m) {
  // x (bh, n, d) float, diagonals (bh, R, 3, P) float32 +-1 -> int32 codes (bh, n, num_hash).
  m.def("fast_hash(Tensor x, Tensor diagonals, int num_hash, int hash_code_len) -> Tensor");
  // out_i = query_mask_i / m sum_f sum_j [q_code_if == k_code_jf] key_mask_j value_j; float32 (bh, n_q, d).
  m.def(
      "lsh_cumulation(Tensor query_codes, Tensor key_codes, Tensor query_mask, Tensor key_mask, "
      "Tensor value, int hash_code_len) -> Tensor");
  // out_i = query_mask_i / m sum_f sum_j [collide] key_mask_j (query_weight_i . key_weight_j) value_j.
  m.def(
      "lsh_weighted_cumulation(Tensor query_codes, Tensor key_codes, Tensor query_mask, Tensor key_mask, "
      "Tensor query_weight, Tensor key_weight, Tensor value, int hash_code_len) -> Tensor");
  // The three gradients of sampled YOSO with the LSH backward, given the output gradient `grad`:
  // grad_query (bh, n_q, d), grad_key (bh, n_k, d), grad_value (bh, n_k, dv), float32; see
  // yoso_core/attention/sampled.py for the formulas.
  m.def(
      "lsh_backward(Tensor query_codes, Tensor key_codes, Tensor query_mask, Tensor key_mask, Tensor query, "
      "Tensor key, Tensor value, Tensor grad, int hash_code_len) -> (Tensor, Tensor, Tensor)");
}
