// Fast Hadamard hash on CUDA. One block hashes a tile of vectors of one batch*head: each rotation
// loads the tile into shared memory (zero-padded), applies three rounds of (+-1 diagonal, then
// butterfly stages), and ORs the signs into the tile's codes. The butterflies are the float32
// operations of the reference, in its order (common.h), so the codes are identical.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../checks.h"
#include "../common.h"
#include "launch.cuh"

namespace yoso {
namespace {

template <typename scalar_t>
__global__ void fast_hash_kernel(const scalar_t* __restrict__ x, const float* __restrict__ diagonals,
                                 int32_t* __restrict__ codes, int64_t n, int64_t d, int64_t p,
                                 int64_t rotations, int64_t rotations_stored, int64_t num_hash,
                                 int64_t hash_code_len, int64_t tile) {
  extern __shared__ float shared[];
  float* y = shared;                                              // (tile, P)
  int32_t* tile_codes = reinterpret_cast<int32_t*>(shared + tile * p);  // (tile, num_hash)
  const int64_t b = blockIdx.y, i0 = static_cast<int64_t>(blockIdx.x) * tile;
  const int64_t bits = num_hash * hash_code_len;
  for (int64_t k = threadIdx.x; k < tile * num_hash; k += blockDim.x) tile_codes[k] = 0;
  for (int64_t r = 0; r < rotations; ++r) {
    for (int64_t k = threadIdx.x; k < tile * p; k += blockDim.x) {
      const int64_t v = k / p, c = k % p, i = i0 + v;
      y[k] = (i < n && c < d) ? static_cast<float>(x[(b * n + i) * d + c]) : 0.0f;
    }
    __syncthreads();
    const float* diag = diagonals + (b * rotations_stored + r) * 3 * p;
    for (int64_t round = 0; round < 3; ++round) {
      for (int64_t k = threadIdx.x; k < tile * p; k += blockDim.x) y[k] *= diag[round * p + k % p];
      __syncthreads();
      for (int64_t half = 1; half < p; half *= 2) {
        for (int64_t k = threadIdx.x; k < tile * (p / 2); k += blockDim.x) {
          const int64_t v = k / (p / 2), first = butterfly_first(k % (p / 2), half);
          butterfly(y[v * p + first], y[v * p + first + half]);
        }
        __syncthreads();
      }
    }
    // each (vector, hash) code is owned by one thread: no atomics
    for (int64_t k = threadIdx.x; k < tile * num_hash; k += blockDim.x) {
      const int64_t v = k / num_hash, f = k % num_hash;
      for (int64_t bit = 0; bit < hash_code_len; ++bit) {
        const int64_t coord = f * hash_code_len + bit;
        if (coord >= r * p && coord < (r + 1) * p && coord < bits) {
          tile_codes[k] |= code_bit(y[v * p + coord - r * p], bit);
        }
      }
    }
    __syncthreads();
  }
  for (int64_t k = threadIdx.x; k < tile * num_hash; k += blockDim.x) {
    const int64_t i = i0 + k / num_hash;
    if (i < n) codes[(b * n + i) * num_hash + k % num_hash] = tile_codes[k];
  }
}

at::Tensor fast_hash_cuda(const at::Tensor& x, const at::Tensor& diagonals, int64_t num_hash,
                          int64_t hash_code_len) {
  check_fast_hash_inputs(x, diagonals, num_hash, hash_code_len);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const at::Tensor dc = diagonals.to(at::kFloat).contiguous();
  const int64_t bh = x.size(0), n = x.size(1), d = x.size(2), p = padded_dim(d);
  at::Tensor codes = at::empty({bh, n, num_hash}, x.options().dtype(at::kInt));
  if (codes.numel() == 0) return codes;
  TORCH_CHECK(bh <= 65535, "yoso: fast_hash on CUDA supports at most 65535 batch*heads, got ", bh);
  // vectors per block: 16 KiB of shared memory for the tile and its codes
  const int64_t tile = std::max<int64_t>(1, std::min<int64_t>(32, 4096 / (p + num_hash)));
  const size_t shared = static_cast<size_t>(tile * (p + num_hash)) * sizeof(float);
  const dim3 grid(static_cast<unsigned>((n + tile - 1) / tile), static_cast<unsigned>(bh));
  const int threads = threads_for(tile * p / 2);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "yoso_fast_hash_cuda", [&] {
    fast_hash_kernel<scalar_t><<<grid, threads, shared, stream>>>(
        xc.const_data_ptr<scalar_t>(), dc.const_data_ptr<float>(), codes.mutable_data_ptr<int32_t>(), n, d, p,
        num_rotations(d, num_hash, hash_code_len), dc.size(1), num_hash, hash_code_len, tile);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return codes;
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) { m.impl("fast_hash", &yoso::fast_hash_cuda); }
