// Fast Hadamard hash, device code. One block hashes a tile of vectors of one batch*head: each
// rotation loads the tile into shared memory (zero-padded), applies three rounds of (+-1 diagonal,
// then butterfly stages), and ORs the signs into the tile's codes. The butterflies are the float32
// operations of the reference, in its order (common.h), so the codes are identical.
#pragma once

#include <cstdint>

#include "../common.h"
#include "device.cuh"

namespace yoso {

// x (bh, n, d) -> codes (bh, n, num_hash); diagonals (bh, rotations_stored, 3, p)
template <typename scalar_t>
__global__ void fast_hash_kernel(const scalar_t* __restrict__ x, const float* __restrict__ diagonals,
                                 int32_t* __restrict__ codes, int64_t n, int64_t d, int64_t p, int64_t rotations,
                                 int64_t rotations_stored, int64_t num_hash, int64_t hash_code_len, int64_t tile) {
  YOSO_DYNAMIC_SHARED(float, shared);
  float* y = shared;                                                    // (tile, P)
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
    // rotation r is coordinates [start, end) of the concatenated rotations: the hashes they feed, as on the CPU
    const int64_t start = r * p, end = (r + 1) * p < bits ? (r + 1) * p : bits;
    const int64_t f_first = hash_of_coordinate(start, hash_code_len);
    const int64_t f_count = hash_of_coordinate(end - 1, hash_code_len) - f_first + 1;
    // each (vector, hash) code is owned by one thread: no atomics
    for (int64_t k = threadIdx.x; k < tile * f_count; k += blockDim.x) {
      const int64_t v = k / f_count, f = f_first + k % f_count;
      const int64_t lo = f * hash_code_len > start ? f * hash_code_len : start;
      const int64_t hi = (f + 1) * hash_code_len < end ? (f + 1) * hash_code_len : end;
      int32_t code = 0;
      for (int64_t coord = lo; coord < hi; ++coord) {
        code |= code_bit(y[v * p + coord - start], bit_of_coordinate(coord, hash_code_len));
      }
      tile_codes[v * num_hash + f] |= code;
    }
    __syncthreads();
  }
  for (int64_t k = threadIdx.x; k < tile * num_hash; k += blockDim.x) {
    const int64_t i = i0 + k / num_hash;
    if (i < n) codes[(b * n + i) * num_hash + k % num_hash] = tile_codes[k];
  }
}

// Grid, block and shared memory of one fast_hash launch.
struct FastHashLaunch {
  int64_t tile;          // vectors per block
  int64_t shared_bytes;  // the tile (tile, P) and its codes (tile, num_hash)
  int64_t grid_x;        // tiles of the sequence
  int64_t grid_y;        // batch*heads
  int threads;
};

inline FastHashLaunch fast_hash_launch(int64_t bh, int64_t n, int64_t d, int64_t num_hash) {
  const int64_t p = padded_dim(d);
  FastHashLaunch launch;
  // vectors per block: 16 KiB of shared memory for the tile and its codes
  const int64_t fit = 4096 / (p + num_hash);
  launch.tile = fit < 1 ? 1 : (fit > 32 ? 32 : fit);
  launch.shared_bytes = launch.tile * (p + num_hash) * static_cast<int64_t>(sizeof(float));
  launch.grid_x = (n + launch.tile - 1) / launch.tile;
  launch.grid_y = bh;
  launch.threads = threads_for(launch.tile * p / 2);
  return launch;
}

}  // namespace yoso
