// CPU scaffolding shared by the cumulation operators (cpu/*.cpp): hashes are split into groups so that every
// thread has work even when batch*heads is small; each (batch*head, group) task writes its own
// output buffer, so no atomics are needed, and the groups are summed at the end.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>

namespace yoso {

// Runs make_worker()(b, f_begin, f_end, out) for every batch*head b and group of hashes, with
// out the zeroed (n_q, d) float32 buffer of that task; returns sum_f out * query_mask / num_hash.
// With one group the scaling happens in the task, while its buffer is still in cache.
template <typename MakeWorker>
at::Tensor accumulate_over_hashes(int64_t bh, int64_t n_q, int64_t d, int64_t num_hash,
                                  const at::Tensor& query_mask, MakeWorker make_worker) {
  const int64_t threads = at::get_num_threads();
  const int64_t groups = std::min(num_hash, std::max<int64_t>(1, (threads + bh - 1) / bh));
  // (groups, bh, n_q, d): one output buffer per group of hashes
  at::Tensor partial = at::empty({groups, bh, n_q, d}, query_mask.options().dtype(at::kFloat));
  float* base = partial.mutable_data_ptr<float>();
  const float* mask = query_mask.const_data_ptr<float>();  // (bh, n_q), float32 contiguous
  const float scale = 1.0f / static_cast<float>(num_hash);
  if (partial.numel() > 0) {
    at::parallel_for(0, bh * groups, 1, [&](int64_t begin, int64_t end) {
      auto worker = make_worker();
      for (int64_t task = begin; task < end; ++task) {
        const int64_t b = task / groups, g = task % groups;
        const int64_t f_begin = g * num_hash / groups, f_end = (g + 1) * num_hash / groups;
        float* out = base + (g * bh + b) * n_q * d;
        std::fill(out, out + n_q * d, 0.0f);
        worker(b, f_begin, f_end, out);
        if (groups == 1) {
          for (int64_t i = 0; i < n_q; ++i) {
            const float factor = mask[b * n_q + i] * scale;
            float* row = out + i * d;
#pragma omp simd
            for (int64_t t = 0; t < d; ++t) row[t] *= factor;
          }
        }
      }
    });
  }
  if (groups == 1) return partial.select(0, 0);
  return partial.sum(0).mul_(query_mask.unsqueeze(-1).mul(1.0 / static_cast<double>(num_hash)));
}

}  // namespace yoso
