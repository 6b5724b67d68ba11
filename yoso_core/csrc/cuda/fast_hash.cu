// Fast Hadamard hash on CUDA: the launcher. The device code is in fast_hash.cuh.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../checks.h"
#include "../common.h"
#include "fast_hash.cuh"

namespace yoso {
namespace {

at::Tensor fast_hash_cuda(const at::Tensor& x, const at::Tensor& diagonals, int64_t num_hash, int64_t hash_code_len) {
  check_fast_hash_inputs(x, diagonals, num_hash, hash_code_len);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor dc = diagonals.to(at::kFloat).contiguous();
  const int64_t bh = x.size(0), n = x.size(1), d = x.size(2), p = padded_dim(d);
  at::Tensor codes = at::empty({bh, n, num_hash}, x.options().dtype(at::kInt));
  if (codes.numel() == 0) return codes;
  TORCH_CHECK(bh <= 65535, "yoso: fast_hash on CUDA supports at most 65535 batch*heads, got ", bh);
  const FastHashLaunch launch = fast_hash_launch(bh, n, d, num_hash);
  const dim3 grid(static_cast<unsigned>(launch.grid_x), static_cast<unsigned>(launch.grid_y));
  const size_t shared = static_cast<size_t>(launch.shared_bytes);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "yoso_fast_hash_cuda", [&] {
    fast_hash_kernel<scalar_t><<<grid, launch.threads, shared, stream>>>(
        xc.const_data_ptr<scalar_t>(), dc.const_data_ptr<float>(), codes.mutable_data_ptr<int32_t>(), n, d, p,
        num_rotations(d, num_hash, hash_code_len), dc.size(1), num_hash, hash_code_len, launch.tile);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return codes;
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) { m.impl("fast_hash", &yoso::fast_hash_cuda); }
