// Fast Hadamard hash on the CPU. Vectors are processed in tiles of kLanes, stored transposed
// (padded_dim rows of kLanes floats), so every butterfly stage is a loop over kLanes contiguous
// floats that the compiler vectorises, whatever the stage's stride. The float32 operations and
// their order equal the reference's, so the codes are identical.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../common.h"

namespace yoso {
namespace {

constexpr int64_t kLanes = 16;

// Multiply row p by diagonal[p], then run the butterfly stages over the tile y (P rows of kLanes).
// Stages are taken two at a time (h and 2h over rows i, i+h, i+2h, i+3h), which halves the loads
// and stores; each value still sees the reference's float32 operations in the reference's order.
inline void rotate_round(float* __restrict__ y, const float* __restrict__ diagonal, int64_t p) {
  for (int64_t r = 0; r < p; ++r) {
    const float sign = diagonal[r];
    float* row = y + r * kLanes;
#pragma omp simd
    for (int64_t v = 0; v < kLanes; ++v) row[v] *= sign;
  }
  int64_t half = 1;
  for (; 4 * half <= p; half *= 4) {
    for (int64_t start = 0; start < p; start += 4 * half) {
      for (int64_t i = start; i < start + half; ++i) {
        float* y0 = y + i * kLanes;
        float* y1 = y + (i + half) * kLanes;
        float* y2 = y + (i + 2 * half) * kLanes;
        float* y3 = y + (i + 3 * half) * kLanes;
#pragma omp simd
        for (int64_t v = 0; v < kLanes; ++v) {
          float a = y0[v], b = y1[v], c = y2[v], e = y3[v];
          butterfly(a, b);  // stage half
          butterfly(c, e);
          butterfly(a, c);  // stage 2 * half
          butterfly(b, e);
          y0[v] = a;
          y1[v] = b;
          y2[v] = c;
          y3[v] = e;
        }
      }
    }
  }
  if (half < p) {  // one stage left when log2(P) is odd
    for (int64_t i = 0; i < half; ++i) {
      float* a = y + i * kLanes;
      float* b = y + (i + half) * kLanes;
#pragma omp simd
      for (int64_t v = 0; v < kLanes; ++v) butterfly(a[v], b[v]);
    }
  }
}

template <typename scalar_t>
void fast_hash_kernel(const scalar_t* x, const float* diagonals, int32_t* codes, int64_t bh, int64_t n,
                      int64_t d, int64_t rotations_stored, int64_t num_hash, int64_t hash_code_len) {
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

at::Tensor fast_hash_cpu(const at::Tensor& x, const at::Tensor& diagonals, int64_t num_hash,
                         int64_t hash_code_len) {
  check_fast_hash_inputs(x, diagonals, num_hash, hash_code_len);
  const at::Tensor xc = x.contiguous();
  const at::Tensor dc = diagonals.to(at::kFloat).contiguous();
  const int64_t bh = x.size(0), n = x.size(1), d = x.size(2);
  at::Tensor codes = at::empty({bh, n, num_hash}, x.options().dtype(at::kInt));
  if (codes.numel() == 0) return codes;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "yoso_fast_hash_cpu", [&] {
    fast_hash_kernel<scalar_t>(xc.const_data_ptr<scalar_t>(), dc.const_data_ptr<float>(),
                               codes.mutable_data_ptr<int32_t>(), bh, n, d, dc.size(1), num_hash,
                               hash_code_len);
  });
  return codes;
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("fast_hash", &yoso::fast_hash_cpu); }
