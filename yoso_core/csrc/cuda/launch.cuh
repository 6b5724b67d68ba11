// Launch helpers shared by the CUDA operators.
#pragma once

#include <c10/cuda/CUDAException.h>

#include <algorithm>
#include <cstdint>

namespace yoso {

// Threads per block for loops over a dimension of size `size` (a multiple of 32, at most 256).
inline int threads_for(int64_t size) {
  return static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, (size + 31) / 32 * 32)));
}

// Bytes of scratch tables the cumulation kernels may allocate at once.
constexpr int64_t kTableBudgetBytes = int64_t(256) << 20;

}  // namespace yoso
