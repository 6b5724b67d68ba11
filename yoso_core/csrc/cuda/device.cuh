// What yoso's CUDA device code needs besides common.h: how it declares shared memory, and the
// launch-size helpers that the launchers (*.cu) and the CPU run of the kernels (tests/cuda_cpu/)
// both call. Plain C++ on <cstdint> only: no torch, no CUDA runtime header.
#pragma once

#include <cstdint>

// The block's dynamic shared memory (the launch's third <<<>>> argument) as an array `name` of
// `type`. Another execution model (tests/cuda_cpu/cuda_cpu.h) defines it first.
#if !defined(YOSO_DYNAMIC_SHARED)
#define YOSO_DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// A fixed-size shared array of one block.
#if !defined(YOSO_STATIC_SHARED)
#define YOSO_STATIC_SHARED(type, name, count) __shared__ type name[count]
#endif

namespace yoso {

constexpr int kWarp = 32;

// Threads per block for loops over a dimension of size `size` (a multiple of 32, at most 256).
inline int threads_for(int64_t size) {
  const int64_t rounded = (size + 31) / 32 * 32;
  return static_cast<int>(rounded < 32 ? 32 : (rounded > 256 ? 256 : rounded));
}

// Bytes of scratch tables the cumulation kernels may allocate at once.
constexpr int64_t kTableBudgetBytes = int64_t(256) << 20;

}  // namespace yoso
