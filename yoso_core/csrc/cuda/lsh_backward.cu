// LSH backward of sampled YOSO on CUDA, the same algorithm as the CPU kernel (cpu/lsh_backward.cpp):
//   grad_value_j = key_mask_j / m         sum_f sum_i [collide] query_mask_i g_i
//   grad_query_i = query_mask_i tau/2 / m sum_f sum_j [collide] key_mask_j (g_i . v_j) k_j
//   grad_key_j   = key_mask_j tau/2 / m   sum_f sum_i [collide] query_mask_i (g_i . v_j) q_i
// For every hash the keys are sorted by bucket (masked keys get a code past the last bucket, so
// they sort last and match no query); every query finds its bucket's range of sorted keys by
// binary search. One warp per (batch*head, hash, query) then walks that range: the dot product
// g_i . v_j (a warp reduction) is formed once and serves grad_query, grad_key and grad_value, the
// pairwise form of the CPU kernel. Gradients are summed with atomicAdd, so float32 sums may differ
// in the last bits from run to run.
#include <ATen/core/Tensor.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/ne.h>
#include <ATen/ops/searchsorted.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../common.h"
#include "launch.cuh"

namespace yoso {
namespace {

constexpr int kWarp = 32;

// What the backward kernel reads and writes, float32 rows, contiguous: the kernel's single argument.
struct BackwardArgs {
  const int64_t* order;     // (bh, m, n_k): keys of each (b, f) in bucket order
  const int64_t* first;     // (bh, m, n_q): start of query i's bucket in order
  const int64_t* last;      // (bh, m, n_q): end of query i's bucket in order
  const float* query_mask;  // (bh, n_q)
  const float* key_mask;    // (bh, n_k)
  const float* query;       // (bh, n_q, d)
  const float* key;         // (bh, n_k, d)
  const float* value;       // (bh, n_k, dv)
  const float* grad;        // (bh, n_q, dv)
  float* grad_query;        // (bh, n_q, d)
  float* grad_key;          // (bh, n_k, d)
  float* grad_value;        // (bh, n_k, dv)
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

std::tuple<at::Tensor, at::Tensor, at::Tensor> lsh_backward_cuda(
    const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query_mask,
    const at::Tensor& key_mask, const at::Tensor& query, const at::Tensor& key, const at::Tensor& value,
    const at::Tensor& grad, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  check_backward_inputs(query_codes, key_codes, query, key, value, grad);
  const c10::cuda::CUDAGuard guard(value.device());
  const int64_t bh = value.size(0), n_k = value.size(1), dv = value.size(2), d = query.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous(), km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor q = query.to(at::kFloat).contiguous(), k = key.to(at::kFloat).contiguous();
  const at::Tensor v = value.to(at::kFloat).contiguous(), g = grad.to(at::kFloat).contiguous();
  const auto options = value.options().dtype(at::kFloat);
  at::Tensor gq = at::zeros({bh, n_q, d}, options);
  at::Tensor gk = at::zeros({bh, n_k, d}, options);
  at::Tensor gv = at::zeros({bh, n_k, dv}, options);
  if (bh > 0 && n_q > 0 && n_k > 0) {
    // (bh, m, n_k) key codes, masked keys moved past the last bucket, sorted stably per (b, f)
    at::Tensor kc = key_codes.to(at::kLong).permute({0, 2, 1});
    kc = at::where(at::ne(km.unsqueeze(1), 0), kc, at::full_like(kc, rows)).contiguous();
    auto [sorted, order] = at::sort(kc, /*stable=*/true, /*dim=*/-1, /*descending=*/false);
    const at::Tensor qc = query_codes.to(at::kLong).permute({0, 2, 1}).contiguous();  // (bh, m, n_q)
    const at::Tensor first = at::searchsorted(sorted, qc, /*out_int32=*/false, /*right=*/false).contiguous();
    const at::Tensor last = at::searchsorted(sorted, qc, /*out_int32=*/false, /*right=*/true).contiguous();
    order = order.contiguous();
    const int64_t tasks = bh * m * n_q, threads = 256, warps = threads / kWarp;
    const int64_t blocks = (tasks + warps - 1) / warps;
    TORCH_CHECK(blocks <= 2147483647LL, "yoso: lsh_backward on CUDA supports at most ", 2147483647LL * warps,
                " (batch*heads * num_hash * seq) tasks, got ", tasks);
    BackwardArgs args;
    args.order = order.const_data_ptr<int64_t>();
    args.first = first.const_data_ptr<int64_t>();
    args.last = last.const_data_ptr<int64_t>();
    args.query_mask = qm.const_data_ptr<float>();
    args.key_mask = km.const_data_ptr<float>();
    args.query = q.const_data_ptr<float>();
    args.key = k.const_data_ptr<float>();
    args.value = v.const_data_ptr<float>();
    args.grad = g.const_data_ptr<float>();
    args.grad_query = gq.mutable_data_ptr<float>();
    args.grad_key = gk.mutable_data_ptr<float>();
    args.grad_value = gv.mutable_data_ptr<float>();
    args.bh = bh, args.n_q = n_q, args.n_k = n_k, args.d = d, args.dv = dv, args.m = m;
    backward_kernel<<<static_cast<unsigned>(blocks), static_cast<unsigned>(threads), 0,
                      c10::cuda::getCurrentCUDAStream()>>>(args);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const double scale = 1.0 / static_cast<double>(m), half_tau = 0.5 * static_cast<double>(hash_code_len);
  gq.mul_(qm.unsqueeze(-1).mul(scale * half_tau));
  gk.mul_(km.unsqueeze(-1).mul(scale * half_tau));
  gv.mul_(km.unsqueeze(-1).mul(scale));
  return {gq, gk, gv};
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CUDA, m) { m.impl("lsh_backward", &yoso::lsh_backward_cuda); }
