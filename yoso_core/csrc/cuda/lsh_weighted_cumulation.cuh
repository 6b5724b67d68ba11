// Weighted LSH cumulation, device code and launch plan, one hash and one chunk of the weight
// dimension at a time: every unmasked key adds kw_j[c] * v_j into its bucket's (chunk, d) table
// with atomicAdd, then one block per query reads out_i += sum_c qw_i[c] T[bucket][c]. Cost
// O(m n w d), memory bounded by the chunk.
#pragma once

#include <cstdint>

#include "../common.h"
#include "device.cuh"

namespace yoso {

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
  const int32_t* __restrict__ query_codes;  // (bh, n_q, m)
  const float* __restrict__ query_weight;   // (bh, n_q, w)
  const float* __restrict__ table;          // (bh, rows, chunk, d)
  float* __restrict__ out;                  // (bh, n_q, d)
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

// Launch plan of one lsh_weighted_cumulation: weight columns per table pass, blocks and threads.
struct WeightedCumulationLaunch {
  int64_t chunk;           // weight columns whose tables (bh, rows, chunk, d) are held at once
  int64_t scatter_blocks;  // one per (batch*head, key)
  int64_t gather_blocks;   // one per (batch*head, query)
  int gather_threads;
  // threads of the scatter of `count` columns
  int scatter_threads(int64_t count, int64_t d) const { return threads_for(count * d); }
};

inline WeightedCumulationLaunch lsh_weighted_cumulation_launch(int64_t bh, int64_t n_q, int64_t n_k, int64_t w,
                                                               int64_t d, int64_t rows,
                                                               int64_t budget_bytes = kTableBudgetBytes) {
  WeightedCumulationLaunch launch;
  const int64_t per_column = bh * rows * d * static_cast<int64_t>(sizeof(float));
  const int64_t fit = budget_bytes / per_column;
  launch.chunk = fit < 1 ? 1 : (fit > w ? w : fit);
  launch.scatter_blocks = bh * n_k;
  launch.gather_blocks = bh * n_q;
  launch.gather_threads = threads_for(d);
  return launch;
}

// The passes of one lsh_weighted_cumulation, in order: for every hash f and chunk of columns
// [c0, c0 + count), zero() clears the whole table, scatter(f, c0, count) and gather(f, c0, count)
// launch the kernels (no scatter without keys). The output is then scaled by query_mask / m.
template <typename Zero, typename Scatter, typename Gather>
void lsh_weighted_cumulation_passes(const WeightedCumulationLaunch& launch, int64_t n_k, int64_t w, int64_t m,
                                    Zero zero, Scatter scatter, Gather gather) {
  for (int64_t f = 0; f < m; ++f) {
    for (int64_t c0 = 0; c0 < w; c0 += launch.chunk) {
      const int64_t count = launch.chunk < w - c0 ? launch.chunk : w - c0;
      zero();
      if (n_k > 0) scatter(f, c0, count);
      gather(f, c0, count);
    }
  }
}

}  // namespace yoso
