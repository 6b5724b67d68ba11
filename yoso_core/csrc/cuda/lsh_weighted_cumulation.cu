// Weighted LSH cumulation on CUDA, one hash and one chunk of the weight dimension at a time:
// every unmasked key adds kw_j[c] * v_j into its bucket's (chunk, d) table with atomicAdd, then
// one block per query reads out_i += sum_c qw_i[c] T[bucket][c]. Cost O(m n w d), memory bounded
// by the chunk.
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

// table (bh, rows, chunk, d) += key_mask_j kw_j[c0 + c] v_j for c < count, at hash f's bucket
__global__ void weighted_scatter_kernel(const int32_t* __restrict__ key_codes, const float* __restrict__ key_mask,
                                        const float* __restrict__ key_weight, const float* __restrict__ value,
                                        float* __restrict__ table, int64_t n_k, int64_t w, int64_t d, int64_t m,
                                        int64_t f, int64_t c0, int64_t count, int64_t chunk, int64_t rows) {
  const int64_t b = blockIdx.x / n_k, j = blockIdx.x % n_k;
  const float mask = key_mask[b * n_k + j];
  if (mask == 0.0f) return;
  const int64_t code = key_codes[(b * n_k + j) * m + f];
  const float* kw = key_weight + (b * n_k + j) * w + c0;
  const float* v = value + (b * n_k + j) * d;
  float* block = table + bucket_row(b, code, rows) * chunk * d;
  for (int64_t k = threadIdx.x; k < count * d; k += blockDim.x) {
    const int64_t c = k / d, t = k % d;
    atomicAdd(block + c * d + t, mask * kw[c] * v[t]);
  }
}

// What one gather launch reads and writes, float32 rows, contiguous: the kernel's single argument.
struct GatherArgs {
  const int32_t* query_codes;  // (bh, n_q, m)
  const float* query_weight;   // (bh, n_q, w)
  const float* table;          // (bh, rows, chunk, d)
  float* out;                  // (bh, n_q, d)
  int64_t n_q, w, d, m;
  int64_t f, c0, count;  // hash f, weight columns [c0, c0 + count)
  int64_t chunk, rows;
};

// out (bh, n_q, d) += sum_c qw_i[c0 + c] table[bucket][c]
__global__ void weighted_gather_kernel(const GatherArgs args) {
  const int64_t n_q = args.n_q, d = args.d;
  const int64_t b = blockIdx.x / n_q, i = blockIdx.x % n_q;
  const int64_t code = args.query_codes[(b * n_q + i) * args.m + args.f];
  const float* qw = args.query_weight + (b * n_q + i) * args.w + args.c0;
  const float* block = args.table + bucket_row(b, code, args.rows) * args.chunk * d;
  for (int64_t t = threadIdx.x; t < d; t += blockDim.x) {
    float acc = 0.0f;
    for (int64_t c = 0; c < args.count; ++c) acc += qw[c] * block[c * d + t];
    args.out[(b * n_q + i) * d + t] += acc;
  }
}

at::Tensor lsh_weighted_cumulation_cuda(const at::Tensor& query_codes, const at::Tensor& key_codes,
                                        const at::Tensor& query_mask, const at::Tensor& key_mask,
                                        const at::Tensor& query_weight, const at::Tensor& key_weight,
                                        const at::Tensor& value, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  check_weights(query_weight, key_weight, query_codes, key_codes);
  const c10::cuda::CUDAGuard guard(value.device());
  const int64_t bh = value.size(0), n_k = value.size(1), d = value.size(2), w = key_weight.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous(), kc = key_codes.contiguous();
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous(), km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor qw = query_weight.to(at::kFloat).contiguous(), kw = key_weight.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous();
  at::Tensor out = at::zeros({bh, n_q, d}, value.options().dtype(at::kFloat));
  if (out.numel() == 0 || w == 0) return out;
  const int64_t per_column = bh * rows * d * static_cast<int64_t>(sizeof(float));
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(w, kTableBudgetBytes / per_column));
  at::Tensor table = at::empty({bh, rows, chunk, d}, out.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  GatherArgs gather;
  gather.query_codes = qc.const_data_ptr<int32_t>();
  gather.query_weight = qw.const_data_ptr<float>();
  gather.table = table.const_data_ptr<float>();
  gather.out = out.mutable_data_ptr<float>();
  gather.n_q = n_q, gather.w = w, gather.d = d, gather.m = m, gather.chunk = chunk, gather.rows = rows;
  for (int64_t f = 0; f < m; ++f) {
    for (int64_t c0 = 0; c0 < w; c0 += chunk) {
      const int64_t count = std::min(chunk, w - c0);
      table.zero_();
      if (n_k > 0) {
        weighted_scatter_kernel<<<static_cast<unsigned>(bh * n_k), threads_for(count * d), 0, stream>>>(
            kc.const_data_ptr<int32_t>(), km.const_data_ptr<float>(), kw.const_data_ptr<float>(),
            v.const_data_ptr<float>(), table.mutable_data_ptr<float>(), n_k, w, d, m, f, c0, count, chunk, rows);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      gather.f = f, gather.c0 = c0, gather.count = count;
      weighted_gather_kernel<<<static_cast<unsigned>(bh * n_q), threads_for(d), 0, stream>>>(gather);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    }
  }
  return out.mul_(qm.unsqueeze(-1).mul(1.0 / static_cast<double>(m)));
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) {
  m.impl("lsh_weighted_cumulation", &yoso::lsh_weighted_cumulation_cuda);
}
