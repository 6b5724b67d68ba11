// LSH cumulation on CUDA: the launcher. The device code and the launch plan are in
// lsh_cumulation.cuh.
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../checks.h"
#include "../common.h"
#include "lsh_cumulation.cuh"

namespace yoso {
namespace {

at::Tensor lsh_cumulation_cuda(const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query_mask,
                               const at::Tensor& key_mask, const at::Tensor& value, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  const c10::cuda::CUDAGuard guard(value.device());
  const int64_t bh = value.size(0), n_k = value.size(1), d = value.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous(), kc = key_codes.contiguous();
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous(), km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous();
  at::Tensor out = at::zeros({bh, n_q, d}, value.options().dtype(at::kFloat));
  if (out.numel() == 0) return out;
  const CumulationLaunch launch = lsh_cumulation_launch(bh, n_q, n_k, d, m, rows);
  at::Tensor table = at::empty({bh, launch.chunk, rows, d}, out.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  lsh_cumulation_passes(
      launch, n_k, m,
      // (bh, count, rows, d): the first count hashes' tables of the buffer
      [&](int64_t count) { table.narrow(1, 0, count).zero_(); },
      [&](int64_t f0, int64_t count) {
        scatter_kernel<<<static_cast<unsigned>(launch.scatter_blocks), launch.threads, 0, stream>>>(
            kc.const_data_ptr<int32_t>(), km.const_data_ptr<float>(), v.const_data_ptr<float>(),
            table.mutable_data_ptr<float>(), n_k, d, m, f0, count, launch.chunk, rows);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      },
      [&](int64_t f0, int64_t count) {
        gather_kernel<<<static_cast<unsigned>(launch.gather_blocks), launch.threads, 0, stream>>>(
            qc.const_data_ptr<int32_t>(), table.const_data_ptr<float>(), out.mutable_data_ptr<float>(), n_q, d, m, f0,
            count, launch.chunk, rows);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
  return out.mul_(qm.unsqueeze(-1).mul(1.0 / static_cast<double>(m)));
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) { m.impl("lsh_cumulation", &yoso::lsh_cumulation_cuda); }
