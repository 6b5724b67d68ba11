// Small dense matrix products for the per-bucket work of the CPU kernels, on rows gathered
// contiguously: C (M x N) = A (M x K) B (K x N), stored or added into rows the caller names.
//   A's element (i, k) is A[i * a_row + k * a_col], so A may be a packed matrix or its transpose;
//   B is row-major with leading dimension ldb; row i of C starts at row(i) (a callable), so the
//   result can go straight into the gradient rows of the bucket's tokens.
// Register-blocked: R rows by NV vectors of 16 floats are accumulated in registers over all of K
// (GCC vector extensions, which compile to AVX-512 where the machine has it and to narrower
// vectors elsewhere), so every B vector loaded serves R rows and every broadcast of A serves NV
// vectors. Widths that are not a multiple of 16 take a plain loop. Accumulation is float32.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>

namespace yoso {

// dst[t] = scale * float(src[t]) for t < n: rows of float32, bfloat16 or float16 inputs are
// widened as they are gathered, so low-precision inputs are never converted up front.
template <typename T>
inline void load_row(const T* __restrict__ src, float* __restrict__ dst, int64_t n, float scale) {
  for (int64_t t = 0; t < n; ++t) dst[t] = scale * static_cast<float>(src[t]);
}

inline void load_row(const float* __restrict__ src, float* __restrict__ dst, int64_t n, float scale) {
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) dst[t] = scale * src[t];
}

inline void load_row(const c10::BFloat16* __restrict__ src, float* __restrict__ dst, int64_t n, float scale) {
  const uint16_t* bits = reinterpret_cast<const uint16_t*>(src);
#pragma omp simd
  for (int64_t t = 0; t < n; ++t) {
    const uint32_t wide = static_cast<uint32_t>(bits[t]) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof value);
    dst[t] = scale * value;
  }
}

inline void load_row(const c10::Half* __restrict__ src, float* __restrict__ dst, int64_t n, float scale) {
  for (int64_t t = 0; t < n; ++t) dst[t] = scale * static_cast<float>(src[t]);
}

using vec16 = float __attribute__((vector_size(64)));
constexpr int64_t kVec = 16;

inline vec16 load16(const float* p) {
  vec16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store16(float* p, vec16 v) { std::memcpy(p, &v, sizeof v); }

// Rows per register block for NV vectors of columns: R * NV accumulators stay within the 32
// vector registers of AVX-512 together with the NV vectors of B.
template <int NV>
constexpr int block_rows() {
  return NV <= 2 ? 8 : 6;
}

// R rows x NV vectors of C, starting at row i0 and column c0.
template <int R, int NV, bool Accumulate, typename Row>
inline void gemm_block(int64_t i0, int64_t c0, int64_t K, const float* __restrict__ A, int64_t a_row, int64_t a_col,
                       const float* __restrict__ B, int64_t ldb, Row& row) {
  vec16 acc[R][NV];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) acc[r][v] = vec16{};
  }
  const float* a0 = A + i0 * a_row;
  const float* b0 = B + c0;
  for (int64_t k = 0; k < K; ++k) {
    vec16 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load16(b0 + k * ldb + v * kVec);
    const float* ak = a0 + k * a_col;
    for (int r = 0; r < R; ++r) {
      const float a = ak[r * a_row];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r) {
    float* out = row(i0 + r) + c0;
    for (int v = 0; v < NV; ++v) {
      if constexpr (Accumulate) {
        store16(out + v * kVec, load16(out + v * kVec) + acc[r][v]);
      } else {
        store16(out + v * kVec, acc[r][v]);
      }
    }
  }
}

// All rows of one column strip of NV vectors: full blocks, then the tail rows one block size at a time.
template <int NV, bool Accumulate, typename Row>
inline void gemm_strip(int64_t M, int64_t c0, int64_t K, const float* A, int64_t a_row, int64_t a_col, const float* B,
                       int64_t ldb, Row& row) {
  constexpr int RB = block_rows<NV>();
  int64_t i = 0;
  for (; i + RB <= M; i += RB) gemm_block<RB, NV, Accumulate>(i, c0, K, A, a_row, a_col, B, ldb, row);
  for (; i + 4 <= M; i += 4) gemm_block<4, NV, Accumulate>(i, c0, K, A, a_row, a_col, B, ldb, row);
  for (; i + 2 <= M; i += 2) gemm_block<2, NV, Accumulate>(i, c0, K, A, a_row, a_col, B, ldb, row);
  for (; i < M; ++i) gemm_block<1, NV, Accumulate>(i, c0, K, A, a_row, a_col, B, ldb, row);
}

// C (M x N) (+)= A (M x K) B (K x N); see the file comment for the operand layouts.
template <bool Accumulate, typename Row>
void gemm(int64_t M, int64_t N, int64_t K, const float* A, int64_t a_row, int64_t a_col, const float* B, int64_t ldb,
          Row row) {
  if (M <= 0 || N <= 0) return;
  if (N % kVec != 0) {  // plain loops for widths that are not whole vectors
    for (int64_t i = 0; i < M; ++i) {
      float* out = row(i);
      if constexpr (!Accumulate) {
        for (int64_t c = 0; c < N; ++c) out[c] = 0.0f;
      }
      for (int64_t k = 0; k < K; ++k) {
        const float a = A[i * a_row + k * a_col];
        const float* b = B + k * ldb;
#pragma omp simd
        for (int64_t c = 0; c < N; ++c) out[c] += a * b[c];
      }
    }
    return;
  }
  int64_t c0 = 0;
  for (; c0 + 4 * kVec <= N; c0 += 4 * kVec) gemm_strip<4, Accumulate>(M, c0, K, A, a_row, a_col, B, ldb, row);
  switch ((N - c0) / kVec) {
    case 3:
      gemm_strip<3, Accumulate>(M, c0, K, A, a_row, a_col, B, ldb, row);
      break;
    case 2:
      gemm_strip<2, Accumulate>(M, c0, K, A, a_row, a_col, B, ldb, row);
      break;
    case 1:
      gemm_strip<1, Accumulate>(M, c0, K, A, a_row, a_col, B, ldb, row);
      break;
    default:
      break;
  }
}

}  // namespace yoso
