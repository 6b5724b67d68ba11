// LSH backward of sampled YOSO, CUDA device code and launch plan; the same algorithm as the CPU
// kernel (cpu/lsh_backward.cpp):
//   grad_value_j = key_mask_j / m         sum_f sum_i [collide] query_mask_i g_i
//   grad_query_i = query_mask_i tau/2 / m sum_f sum_j [collide] key_mask_j (g_i . v_j) k_j
//   grad_key_j   = key_mask_j tau/2 / m   sum_f sum_i [collide] query_mask_i (g_i . v_j) q_i
// For every hash the keys are sorted by bucket (masked keys get a code past the last bucket, so
// they sort last and match no query); every query finds its bucket's range of sorted keys by
// binary search. One warp per (batch*head, hash, query) then walks that range: the dot product
// g_i . v_j (a warp reduction) is formed once and serves grad_query, grad_key and grad_value, the
// pairwise form of the CPU kernel. Gradients are summed with atomicAdd, so float32 sums may differ
// in the last bits from run to run.
#pragma once

#include <cstdint>

#include "../common.h"
#include "device.cuh"

namespace yoso {

// What the backward kernel reads and writes, float32 rows, contiguous: the kernel's single argument.
struct BackwardArgs {
  const int64_t* __restrict__ order;     // (bh, m, n_k): keys of each (b, f) in bucket order
  const int64_t* __restrict__ first;     // (bh, m, n_q): start of query i's bucket in order
  const int64_t* __restrict__ last;      // (bh, m, n_q): end of query i's bucket in order
  const float* __restrict__ query_mask;  // (bh, n_q)
  const float* __restrict__ key_mask;    // (bh, n_k)
  const float* __restrict__ query;       // (bh, n_q, d)
  const float* __restrict__ key;         // (bh, n_k, d)
  const float* __restrict__ value;       // (bh, n_k, dv)
  const float* __restrict__ grad;        // (bh, n_q, dv)
  float* __restrict__ grad_query;        // (bh, n_q, d)
  float* __restrict__ grad_key;          // (bh, n_k, d)
  float* __restrict__ grad_value;        // (bh, n_k, dv)
  int64_t bh, n_q, n_k, d, dv, m;
};

// One warp per (b, f, i): blockIdx.x * warps_per_block + warp = (b * m + f) * n_q + i.
__global__ void backward_kernel(const BackwardArgs args) {
  const int64_t n_q = args.n_q, n_k = args.n_k, d = args.d, dv = args.dv, m = args.m;
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarp;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  if (task >= args.bh * m * n_q) return;
  const int64_t i = task % n_q, bf = task / n_q, b = bf / m;
  const float qmask = args.query_mask[b * n_q + i];
  if (qmask == 0.0f) return;
  const float* g = args.grad + (b * n_q + i) * dv;
  const float* q = args.query + (b * n_q + i) * d;
  float* gq = args.grad_query + (b * n_q + i) * d;
  const int64_t* keys = args.order + bf * n_k;  // keys of (b, f) in bucket order
  for (int64_t p = args.first[task]; p < args.last[task]; ++p) {
    const int64_t j = keys[p];
    const float kmask = args.key_mask[b * n_k + j];
    const float* v = args.value + (b * n_k + j) * dv;
    float partial = 0.0f;
    for (int64_t t = lane; t < dv; t += kWarp) partial += g[t] * v[t];
    for (int offset = kWarp / 2; offset > 0; offset /= 2) partial += __shfl_xor_sync(0xffffffffu, partial, offset);
    const float* k = args.key + (b * n_k + j) * d;
    float* gk = args.grad_key + (b * n_k + j) * d;
    float* gv = args.grad_value + (b * n_k + j) * dv;
    for (int64_t t = lane; t < d; t += kWarp) {
      atomicAdd(gq + t, partial * kmask * k[t]);
      atomicAdd(gk + t, partial * qmask * q[t]);
    }
    for (int64_t t = lane; t < dv; t += kWarp) atomicAdd(gv + t, qmask * g[t]);
  }
}

// Blocks and threads of the backward: one warp per (batch*head, hash, query), 8 warps a block.
struct BackwardLaunch {
  int64_t tasks;  // warps with work: bh * m * n_q
  int64_t blocks;
  int threads;
};

inline BackwardLaunch lsh_backward_launch(int64_t bh, int64_t n_q, int64_t m) {
  BackwardLaunch launch;
  launch.threads = 256;
  const int64_t warps = launch.threads / kWarp;
  launch.tasks = bh * m * n_q;
  launch.blocks = (launch.tasks + warps - 1) / warps;
  return launch;
}

}  // namespace yoso
