// Fast Hadamard hash on the CPU. Vectors are processed in tiles of kLanes, stored transposed
// (padded_dim rows of kLanes floats), so every butterfly stage is a loop over kLanes contiguous
// floats that the compiler vectorises, whatever the stage's stride; stages go three at a time. The float32 operations
// and their order equal the reference's, so the codes are identical.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "buckets.h"

namespace yoso {
namespace {

constexpr int64_t kLanes = 16;

// Three butterfly stages (h, 2h, 4h) on the eight rows y[base + k * h], k = 0..7, each first
// multiplied by its sign when kSigned. Every value sees the reference's float32 operations in the
// reference's order; only loads and stores are saved.
template <bool kSigned>
inline void radix8(float* __restrict__ y, int64_t base, int64_t h, const float* __restrict__ diagonal) {
  float* __restrict__ y0 = y + base * kLanes;
  float* __restrict__ y1 = y0 + h * kLanes;
  float* __restrict__ y2 = y1 + h * kLanes;
  float* __restrict__ y3 = y2 + h * kLanes;
  float* __restrict__ y4 = y3 + h * kLanes;
  float* __restrict__ y5 = y4 + h * kLanes;
  float* __restrict__ y6 = y5 + h * kLanes;
  float* __restrict__ y7 = y6 + h * kLanes;
  float s0 = 1.0f, s1 = 1.0f, s2 = 1.0f, s3 = 1.0f, s4 = 1.0f, s5 = 1.0f, s6 = 1.0f, s7 = 1.0f;
  if constexpr (kSigned) {
    s0 = diagonal[base], s1 = diagonal[base + h], s2 = diagonal[base + 2 * h], s3 = diagonal[base + 3 * h];
    s4 = diagonal[base + 4 * h], s5 = diagonal[base + 5 * h], s6 = diagonal[base + 6 * h];
    s7 = diagonal[base + 7 * h];
  }
#pragma omp simd
  for (int64_t v = 0; v < kLanes; ++v) {
    float r0 = y0[v], r1 = y1[v], r2 = y2[v], r3 = y3[v], r4 = y4[v], r5 = y5[v], r6 = y6[v], r7 = y7[v];
    if constexpr (kSigned) {
      r0 *= s0, r1 *= s1, r2 *= s2, r3 *= s3, r4 *= s4, r5 *= s5, r6 *= s6, r7 *= s7;
    }
    butterfly(r0, r1), butterfly(r2, r3), butterfly(r4, r5), butterfly(r6, r7);  // stage h
    butterfly(r0, r2), butterfly(r1, r3), butterfly(r4, r6), butterfly(r5, r7);  // stage 2h
    butterfly(r0, r4), butterfly(r1, r5), butterfly(r2, r6), butterfly(r3, r7);  // stage 4h
    y0[v] = r0, y1[v] = r1, y2[v] = r2, y3[v] = r3, y4[v] = r4, y5[v] = r5, y6[v] = r6, y7[v] = r7;
  }
}

// Multiply row r by diagonal[r], then run the butterfly stages over the tile y (P rows of kLanes):
// three stages per pass over the tile (the first pass also applies the signs), then the one or two
// stages left when log2(P) is not a multiple of three.
inline void rotate_round(float* __restrict__ y, const float* __restrict__ diagonal, int64_t p) {
  int64_t half = 1;
  bool signed_rows = false;
  for (; 8 * half <= p; half *= 8) {
    for (int64_t start = 0; start < p; start += 8 * half) {
      for (int64_t i = start; i < start + half; ++i) {
        if (signed_rows) {
          radix8<false>(y, i, half, diagonal);
        } else {
          radix8<true>(y, i, half, diagonal);
        }
      }
    }
    signed_rows = true;
  }
  if (!signed_rows) {
    for (int64_t r = 0; r < p; ++r) {
      const float sign = diagonal[r];
      float* row = y + r * kLanes;
#pragma omp simd
      for (int64_t v = 0; v < kLanes; ++v) row[v] *= sign;
    }
  }
  for (; half < p; half *= 2) {  // at most two stages left
    for (int64_t start = 0; start < p; start += 2 * half) {
      for (int64_t i = start; i < start + half; ++i) {
        float* a = y + i * kLanes;
        float* b = y + (i + half) * kLanes;
#pragma omp simd
        for (int64_t v = 0; v < kLanes; ++v) butterfly(a[v], b[v]);
      }
    }
  }
}

template <typename scalar_t>
void fast_hash_kernel(const scalar_t* x, const float* diagonals, int32_t* codes, int64_t bh, int64_t n, int64_t d,
                      int64_t rotations_stored, int64_t num_hash, int64_t hash_code_len) {
  const int64_t p = padded_dim(d);
  const int64_t rotations = num_rotations(d, num_hash, hash_code_len);
  const int64_t bits = num_hash * hash_code_len;
  const int64_t tiles = (n + kLanes - 1) / kLanes;
  at::parallel_for(0, bh * tiles, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> input(p * kLanes), y(p * kLanes);
    std::vector<int32_t> tile_codes(num_hash * kLanes);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / tiles, i0 = (task % tiles) * kLanes;
      const int64_t lanes = std::min(kLanes, n - i0);
      // input: (P, kLanes), x transposed and zero-padded
      std::fill(input.begin(), input.end(), 0.0f);
      for (int64_t v = 0; v < lanes; ++v) {
        const scalar_t* row = x + (b * n + i0 + v) * d;
        for (int64_t c = 0; c < d; ++c) input[c * kLanes + v] = static_cast<float>(row[c]);
      }
      std::fill(tile_codes.begin(), tile_codes.end(), 0);
      for (int64_t r = 0; r < rotations; ++r) {
        std::copy(input.begin(), input.end(), y.begin());
        const float* diag = diagonals + (b * rotations_stored + r) * 3 * p;
        for (int64_t round = 0; round < 3; ++round) rotate_round(y.data(), diag + round * p, p);
        const int64_t last = std::min(p, bits - r * p);
        // hash and bit of coordinate r * p + c, advanced by counting (no division per coordinate)
        int64_t f = hash_of_coordinate(r * p, hash_code_len), bit = bit_of_coordinate(r * p, hash_code_len);
        for (int64_t c = 0; c < last; ++c) {
          int32_t* out = tile_codes.data() + f * kLanes;
          const float* row = y.data() + c * kLanes;
#pragma omp simd
          for (int64_t v = 0; v < kLanes; ++v) out[v] |= code_bit(row[v], bit);
          if (++bit == hash_code_len) {
            bit = 0;
            ++f;
          }
        }
      }
      for (int64_t v = 0; v < lanes; ++v) {
        int32_t* out = codes + (b * n + i0 + v) * num_hash;
        for (int64_t f = 0; f < num_hash; ++f) out[f] = tile_codes[f * kLanes + v];
      }
    }
  });
}

at::Tensor fast_hash_cpu(const at::Tensor& x, const at::Tensor& diagonals, int64_t num_hash, int64_t hash_code_len) {
  check_fast_hash_inputs(x, diagonals, num_hash, hash_code_len);
  const at::Tensor xc = x.contiguous();
  const at::Tensor dc = diagonals.to(at::kFloat).contiguous();
  const int64_t bh = x.size(0), n = x.size(1), d = x.size(2);
  at::Tensor codes = empty_huge({bh, n, num_hash}, x.options().dtype(at::kInt));
  if (codes.numel() == 0) return codes;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "yoso_fast_hash_cpu", [&] {
    fast_hash_kernel<scalar_t>(xc.const_data_ptr<scalar_t>(), dc.const_data_ptr<float>(),
                               codes.mutable_data_ptr<int32_t>(), bh, n, d, dc.size(1), num_hash, hash_code_len);
  });
  return codes;
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("fast_hash", &yoso::fast_hash_cpu); }
