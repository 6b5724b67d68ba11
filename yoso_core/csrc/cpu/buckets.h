// CPU scaffolding shared by the cumulation operators (cpu/*.cpp): the bucket lists of one hash, and
// the split of the work into (batch*head, group of hashes) tasks. Hashes are split into groups so
// that every thread has work even when batch*heads is small; each task writes its own output
// buffer, so no atomics are needed, and the groups are summed at the end.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../checks.h"

namespace yoso {

// Asks for transparent huge pages on the 2 MiB-aligned interior of a freshly allocated, untouched
// buffer (where the kernel offers them on request): the kernels visit rows of large arrays in
// random order, and 4 KiB pages make every such visit a TLB miss. A no-op elsewhere.
inline void advise_huge_pages(void* data, int64_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + static_cast<uintptr_t>(bytes)) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data, (void)bytes;
#endif
}

// float32, bfloat16 and float16 rows are read by the kernels as they are (widened as they are
// gathered); anything else (float64) is converted to float32.
inline at::Tensor rows_of(const at::Tensor& t) {
  const auto type = t.scalar_type();
  if (type == at::kFloat || type == at::kBFloat16 || type == at::kHalf) return t.contiguous();
  return t.to(at::kFloat).contiguous();
}

// at::empty with huge pages advised (see advise_huge_pages).
inline at::Tensor empty_huge(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  if (t.nbytes() >= (int64_t(4) << 20)) advise_huge_pages(t.data_ptr(), static_cast<int64_t>(t.nbytes()));
  return t;
}

// The unmasked keys and queries of one hash, grouped by bucket (a counting sort): bucket s holds
// keys key_list[key_start[s] .. key_start[s+1]) and queries query_list[query_start[s] ..
// query_start[s+1]). Only buckets with a key exist; a query whose bucket has no key is left out.
struct BucketLists {
  int64_t rows;
  std::vector<int32_t> slot;  // (rows,): bucket index of each code, -1 while empty
  std::vector<int32_t> key_start, query_start, key_list, query_list, fill;

  BucketLists(int64_t rows_, int64_t n_q, int64_t n_k)
      : rows(rows_),
        slot(rows_, -1),
        key_start(n_k + 2),
        query_start(n_k + 2),
        key_list(n_k),
        query_list(n_q),
        fill(n_k + 1) {}

  // Codes of query i and key j are qc[i * stride] and kc[j * stride]; returns the number of buckets.
  // With key_bucket given, key_bucket[j] is set to the bucket of key j (-1 for a masked key).
  int32_t sort(const int32_t* qc, const int32_t* kc, const float* qm, const float* km, int64_t n_q, int64_t n_k,
               int64_t stride, int32_t* key_bucket = nullptr) {
    int32_t used = 0;
    for (int64_t j = 0; j < n_k; ++j) {
      if (km[j] == 0.0f) continue;
      int32_t s = slot[kc[j * stride]];
      if (s < 0) {
        s = slot[kc[j * stride]] = used++;
        key_start[s + 1] = 0;
        query_start[s + 1] = 0;
      }
      ++key_start[s + 1];
    }
    for (int64_t i = 0; i < n_q; ++i) {
      if (qm[i] == 0.0f) continue;
      const int32_t s = slot[qc[i * stride]];
      if (s >= 0) ++query_start[s + 1];
    }
    key_start[0] = query_start[0] = 0;
    for (int32_t s = 0; s < used; ++s) {
      key_start[s + 1] += key_start[s];
      query_start[s + 1] += query_start[s];
    }
    std::copy(key_start.begin(), key_start.begin() + used, fill.begin());
    for (int64_t j = 0; j < n_k; ++j) {
      if (km[j] != 0.0f) key_list[fill[slot[kc[j * stride]]]++] = static_cast<int32_t>(j);
    }
    if (key_bucket != nullptr) {
      for (int64_t j = 0; j < n_k; ++j) key_bucket[j] = km[j] != 0.0f ? slot[kc[j * stride]] : -1;
    }
    std::copy(query_start.begin(), query_start.begin() + used, fill.begin());
    for (int64_t i = 0; i < n_q; ++i) {
      if (qm[i] == 0.0f) continue;
      const int32_t s = slot[qc[i * stride]];
      if (s >= 0) query_list[fill[s]++] = static_cast<int32_t>(i);
    }
    for (int64_t j = 0; j < n_k; ++j) slot[kc[j * stride]] = -1;  // ready for the next hash
    return used;
  }

  int64_t keys_in(int32_t s) const { return key_start[s + 1] - key_start[s]; }
  int64_t queries_in(int32_t s) const { return query_start[s + 1] - query_start[s]; }
  const int32_t* keys(int32_t s) const { return key_list.data() + key_start[s]; }
  const int32_t* queries(int32_t s) const { return query_list.data() + query_start[s]; }
};

// How many groups the hashes are split into: more than one only when batch*heads alone cannot
// keep every thread busy.
inline int64_t hash_groups(int64_t bh, int64_t num_hash) {
  const int64_t threads = at::get_num_threads();
  return std::min(num_hash, std::max<int64_t>(1, (threads + bh - 1) / bh));
}

// Runs task(worker, b, group, f_begin, f_end) for every batch*head b and group of hashes
// [f_begin, f_end), in parallel; each thread makes its own worker with make_worker().
template <typename MakeWorker, typename Task>
void for_each_hash_group(int64_t bh, int64_t num_hash, int64_t groups, MakeWorker make_worker, Task task) {
  at::parallel_for(0, bh * groups, 1, [&](int64_t begin, int64_t end) {
    auto worker = make_worker();
    for (int64_t index = begin; index < end; ++index) {
      const int64_t b = index / groups, g = index % groups;
      task(worker, b, g, g * num_hash / groups, (g + 1) * num_hash / groups);
    }
  });
}

// The groups' buffers (groups, bh, n, width) summed, every row scaled by mask (bh, n) * factor.
inline at::Tensor sum_over_groups(const at::Tensor& partial, const at::Tensor& mask, double factor) {
  at::Tensor total = partial.size(0) == 1 ? partial.select(0, 0) : partial.sum(0);
  return total.mul_(mask.unsqueeze(-1).mul(factor));
}

// Runs make_worker()(b, f_begin, f_end, out) for every batch*head b and group of hashes, with
// out the zeroed (n_q, d) float32 buffer of that task; returns sum_f out * query_mask / num_hash.
// With one group the scaling happens in the task, while its buffer is still in cache.
template <typename MakeWorker>
at::Tensor accumulate_over_hashes(int64_t bh, int64_t n_q, int64_t d, int64_t num_hash, const at::Tensor& query_mask,
                                  MakeWorker make_worker) {
  const int64_t groups = hash_groups(bh, num_hash);
  // (groups, bh, n_q, d): one output buffer per group of hashes
  at::Tensor partial = empty_huge({groups, bh, n_q, d}, query_mask.options().dtype(at::kFloat));
  float* base = partial.mutable_data_ptr<float>();
  const float* mask = query_mask.const_data_ptr<float>();  // (bh, n_q), float32 contiguous
  const float scale = 1.0f / static_cast<float>(num_hash);
  auto task = [&](auto& worker, int64_t b, int64_t g, int64_t f_begin, int64_t f_end) {
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
  };
  if (partial.numel() > 0) for_each_hash_group(bh, num_hash, groups, make_worker, task);
  if (groups == 1) return partial.select(0, 0);
  return sum_over_groups(partial, query_mask, 1.0 / static_cast<double>(num_hash));
}

}  // namespace yoso
