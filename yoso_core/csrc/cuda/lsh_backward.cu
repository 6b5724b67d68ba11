// LSH backward of sampled YOSO on CUDA: the launcher (keys sorted by bucket, each query's range
// found by binary search, then the kernel). The device code and the math are in lsh_backward.cuh.
#include <ATen/core/Tensor.h>
#include <ATen/ops/full_like.h>
#include <ATen/ops/ne.h>
#include <ATen/ops/searchsorted.h>
#include <ATen/ops/sort.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <tuple>

#include "../checks.h"
#include "../common.h"
#include "lsh_backward.cuh"

namespace yoso {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> lsh_backward_cuda(const at::Tensor& query_codes,
                                                                 const at::Tensor& key_codes,
                                                                 const at::Tensor& query_mask,
                                                                 const at::Tensor& key_mask, const at::Tensor& query,
                                                                 const at::Tensor& key, const at::Tensor& value,
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
    const BackwardLaunch launch = lsh_backward_launch(bh, n_q, m);
    const int64_t warps = launch.threads / kWarp;
    TORCH_CHECK(launch.blocks <= 2147483647LL, "yoso: lsh_backward on CUDA supports at most ", 2147483647LL * warps,
                " (batch*heads * num_hash * seq) tasks, got ", launch.tasks);
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
    backward_kernel<<<static_cast<unsigned>(launch.blocks), static_cast<unsigned>(launch.threads), 0,
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
