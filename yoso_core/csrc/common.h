// Per-element arithmetic of YOSO shared by the CPU (g++) and CUDA (nvcc) kernels.
//
// Fast hash: y = H D3 H D2 H D1 pad(x) per rotation (H the unnormalised Walsh-Hadamard transform
// by butterflies, D random +-1 diagonals). Coordinate c of the rotations concatenated
// (rotation-major) feeds bit c % tau of hash c / tau; the bit is set when the coordinate is > 0.
// Cumulation: bucket `code` of hash `f` in a table of 2^tau rows.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define YOSO_HD __host__ __device__ __forceinline__
#else
#define YOSO_HD inline
#endif

namespace yoso {

// Number of rows of one hash's bucket table.
YOSO_HD int64_t table_rows(int64_t hash_code_len) { return int64_t(1) << hash_code_len; }

// The power of two the fast hash pads head_dim to.
YOSO_HD int64_t padded_dim(int64_t head_dim) {
  int64_t p = 1;
  while (p < head_dim) p <<= 1;
  return p;
}

// Rotations needed for num_hash * hash_code_len bits of padded_dim coordinates each.
YOSO_HD int64_t num_rotations(int64_t head_dim, int64_t num_hash, int64_t hash_code_len) {
  const int64_t p = padded_dim(head_dim);
  return (num_hash * hash_code_len + p - 1) / p;
}

// One Hadamard butterfly: (a, b) -> (a + b, a - b), in float32 like the reference.
YOSO_HD void butterfly(float& a, float& b) {
  const float sum = a + b;
  const float diff = a - b;
  a = sum;
  b = diff;
}

// Stage `half` (1, 2, 4, ...) pairs element i with i + half inside blocks of 2 * half: the first
// element of butterfly number `pair` (0 <= pair < P / 2).
YOSO_HD int64_t butterfly_first(int64_t pair, int64_t half) { return (pair / half) * (2 * half) + (pair % half); }

// Which hash and which bit coordinate `coord` of the concatenated rotations feeds.
YOSO_HD int64_t hash_of_coordinate(int64_t coord, int64_t hash_code_len) { return coord / hash_code_len; }
YOSO_HD int64_t bit_of_coordinate(int64_t coord, int64_t hash_code_len) { return coord % hash_code_len; }

// The contribution of one rotated coordinate to its hash code.
YOSO_HD int32_t code_bit(float coordinate, int64_t bit) { return coordinate > 0.0f ? (int32_t(1) << bit) : int32_t(0); }

// Flat row of bucket `code` in a table laid out (tables, rows) with table index `table`.
YOSO_HD int64_t bucket_row(int64_t table, int64_t code, int64_t rows) { return table * rows + code; }

}  // namespace yoso
