// LSH cumulation on CUDA, a chunk of hashes at a time: zero a (bh, hashes, 2^tau, d) table, every
// unmasked key adds its value into its bucket row with atomicAdd, then one block per query sums
// the rows of its buckets over the chunk (each output element owned by one thread).
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <algorithm>

#include "../checks.h"
#include "../common.h"
#include "launch.cuh"

namespace yoso {
namespace {

// table (bh, chunk, rows, d) += key_mask_j * value_j at the key's bucket, for hashes [f0, f0 + count)
__global__ void scatter_kernel(const int32_t* __restrict__ key_codes, const float* __restrict__ key_mask,
                               const float* __restrict__ value, float* __restrict__ table, int64_t n_k,
                               int64_t d, int64_t m, int64_t f0, int64_t count, int64_t chunk, int64_t rows) {
  const int64_t b = blockIdx.x / n_k, j = blockIdx.x % n_k;
  const float mask = key_mask[b * n_k + j];
  if (mask == 0.0f) return;
  const float* v = value + (b * n_k + j) * d;
  for (int64_t f = 0; f < count; ++f) {
    const int64_t code = key_codes[(b * n_k + j) * m + f0 + f];
    float* row = table + bucket_row(b * chunk + f, code, rows) * d;
    for (int64_t t = threadIdx.x; t < d; t += blockDim.x) atomicAdd(row + t, mask * v[t]);
  }
}

// out (bh, n_q, d) += sum over the chunk of the rows of the query's buckets
__global__ void gather_kernel(const int32_t* __restrict__ query_codes, const float* __restrict__ table,
                              float* __restrict__ out, int64_t n_q, int64_t d, int64_t m, int64_t f0,
                              int64_t count, int64_t chunk, int64_t rows) {
  const int64_t b = blockIdx.x / n_q, i = blockIdx.x % n_q;
  for (int64_t t = threadIdx.x; t < d; t += blockDim.x) {
    float acc = 0.0f;
    for (int64_t f = 0; f < count; ++f) {
      const int64_t code = query_codes[(b * n_q + i) * m + f0 + f];
      acc += table[bucket_row(b * chunk + f, code, rows) * d + t];
    }
    out[(b * n_q + i) * d + t] += acc;
  }
}

at::Tensor lsh_cumulation_cuda(const at::Tensor& query_codes, const at::Tensor& key_codes,
                               const at::Tensor& query_mask, const at::Tensor& key_mask, const at::Tensor& value,
                               int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  const c10::cuda::CUDAGuard guard(value.device());
  const int64_t bh = value.size(0), n_k = value.size(1), d = value.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous(), kc = key_codes.contiguous();
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous(), km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous();
  at::Tensor out = at::zeros({bh, n_q, d}, value.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  const int64_t per_hash = bh * rows * d * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(m, kTableBudgetBytes / per_hash));
  at::Tensor table = at::empty({bh, chunk, rows, d}, out.options());
  const int threads = threads_for(d);
  auto stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t f0 = 0; f0 < m; f0 += chunk) {
    const int64_t c = std::min(chunk, m - f0);
    // (bh, c, rows, d): the first c hashes' tables of the buffer
    at::Tensor part = table.narrow(1, 0, c);
    part.zero_();
    if (n_k > 0) {
      scatter_kernel<<<static_cast<unsigned>(bh * n_k), threads, 0, stream>>>(
          kc.const_data_ptr<int32_t>(), km.const_data_ptr<float>(), v.const_data_ptr<float>(),
          table.mutable_data_ptr<float>(), n_k, d, m, f0, c, chunk, rows);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
    gather_kernel<<<static_cast<unsigned>(bh * n_q), threads, 0, stream>>>(
        qc.const_data_ptr<int32_t>(), table.const_data_ptr<float>(), out.mutable_data_ptr<float>(), n_q, d, m, f0,
        c, chunk, rows);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return out.mul_(qm.unsqueeze(-1).mul(1.0 / static_cast<double>(m)));
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) { m.impl("lsh_cumulation", &yoso::lsh_cumulation_cuda); }
