// LSH cumulation, device code and launch plan, a chunk of hashes at a time: zero a
// (bh, hashes, 2^tau, d) table, every unmasked key adds its value into its bucket row with
// atomicAdd, then one block per query sums the rows of its buckets over the chunk (each output
// element owned by one thread).
#pragma once

#include <cstdint>

#include "../common.h"
#include "device.cuh"

namespace yoso {

// table (bh, chunk, rows, d) += key_mask_j * value_j at the key's bucket, for hashes [f0, f0 + count)
__global__ void scatter_kernel(const int32_t* __restrict__ key_codes, const float* __restrict__ key_mask,
                               const float* __restrict__ value, float* __restrict__ table, int64_t n_k, int64_t d,
                               int64_t m, int64_t f0, int64_t count, int64_t chunk, int64_t rows) {
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
                              float* __restrict__ out, int64_t n_q, int64_t d, int64_t m, int64_t f0, int64_t count,
                              int64_t chunk, int64_t rows) {
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

// Launch plan of one lsh_cumulation: hashes per table pass, blocks and threads of both kernels.
struct CumulationLaunch {
  int64_t chunk;           // hashes whose tables (bh, chunk, rows, d) are held at once
  int64_t scatter_blocks;  // one per (batch*head, key)
  int64_t gather_blocks;   // one per (batch*head, query)
  int threads;
};

inline CumulationLaunch lsh_cumulation_launch(int64_t bh, int64_t n_q, int64_t n_k, int64_t d, int64_t m, int64_t rows,
                                              int64_t budget_bytes = kTableBudgetBytes) {
  CumulationLaunch launch;
  const int64_t per_hash = bh * rows * d * static_cast<int64_t>(sizeof(float));
  const int64_t fit = budget_bytes / per_hash;
  launch.chunk = fit < 1 ? 1 : (fit > m ? m : fit);
  launch.scatter_blocks = bh * n_k;
  launch.gather_blocks = bh * n_q;
  launch.threads = threads_for(d);
  return launch;
}

// The passes of one lsh_cumulation over its hashes, in order: zero(count) clears the first
// `count` tables, scatter(f0, count) and gather(f0, count) launch the kernels (no scatter
// without keys). The output is then scaled by query_mask / m.
template <typename Zero, typename Scatter, typename Gather>
void lsh_cumulation_passes(const CumulationLaunch& launch, int64_t n_k, int64_t m, Zero zero, Scatter scatter,
                           Gather gather) {
  for (int64_t f0 = 0; f0 < m; f0 += launch.chunk) {
    const int64_t count = launch.chunk < m - f0 ? launch.chunk : m - f0;
    zero(count);
    if (n_k > 0) scatter(f0, count);
    gather(f0, count);
  }
}

}  // namespace yoso
