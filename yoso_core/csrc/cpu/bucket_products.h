// The exact per-bucket products shared by the weighted cumulation and the LSH backward on the CPU.
// One bucket pairs "readers" (queries) with "sources" (keys); each reader r gets
//   out_r += sum_s (reader_weight_r . source_weight_s) source_mask_s source_value_s
// in one of two forms (the caller picks the cheaper):
//   table:    T = sum_s source_mask_s source_weight_s (x) source_value_s (w x d), then out_r += reader_weight_r^T T;
//   pairwise: dots = reader weights x source weights^T (nq x nk), then out_r += sum_s dots_rs masked value_s.
// Rows live in (seq, width) arrays and are picked by index lists; operands of the pairwise form are
// packed contiguously so every inner loop runs over a contiguous dimension the compiler vectorises.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "width.h"

namespace yoso {

// Sources per vector of dot products (one AVX-512 register of floats).
constexpr int64_t kSourceBlock = 16;

template <typename T>
inline void reserve(std::vector<T>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(size);
}

// Table form into out (rows of width d); `table` is scratch for w * d floats.
inline void table_product(std::vector<float>& table, int64_t w, int64_t d, const float* source_weight,
                          const float* source_value, const float* source_mask, const int32_t* sources,
                          int64_t n_sources, const float* reader_weight, const int32_t* readers, int64_t n_readers,
                          float* out) {
  reserve(table, w * d);
  std::fill(table.begin(), table.begin() + w * d, 0.0f);
  for (int64_t a = 0; a < n_sources; ++a) {
    const int64_t j = sources[a];
    const float* sw = source_weight + j * w;
    const float* sv = source_value + j * d;
    for (int64_t c = 0; c < w; ++c) {
      const float coef = sw[c] * source_mask[j];
      float* row = table.data() + c * d;
#pragma omp simd
      for (int64_t t = 0; t < d; ++t) row[t] += coef * sv[t];
    }
  }
  for (int64_t a = 0; a < n_readers; ++a) {
    const int64_t i = readers[a];
    const float* rw = reader_weight + i * w;
    float* o = out + i * d;
    for (int64_t c = 0; c < w; ++c) {
      const float coef = rw[c];
      const float* row = table.data() + c * d;
#pragma omp simd
      for (int64_t t = 0; t < d; ++t) o[t] += coef * row[t];
    }
  }
}

// The pairwise form, in three steps a caller may also use on their own (the LSH backward reuses
// the dot products for a second product).
struct PairwiseProduct {
  int64_t padded = 0;          // sources rounded up to kSourceBlock
  std::vector<float> columns;  // (w, padded): source weights transposed, zero-padded
  std::vector<float> values;   // (n_sources, d): masked source values
  std::vector<float> dots;     // (n_readers, padded)
  std::vector<float> acc;      // (d,)

  void pack(int64_t w, int64_t d, const float* source_weight, const float* source_value, const float* source_mask,
            const int32_t* sources, int64_t n_sources) {
    padded = (n_sources + kSourceBlock - 1) / kSourceBlock * kSourceBlock;
    reserve(columns, w * padded);
    reserve(values, n_sources * d);
    for (int64_t c = 0; c < w; ++c) {  // zero only the padding of each column
      std::fill(columns.begin() + c * padded + n_sources, columns.begin() + (c + 1) * padded, 0.0f);
    }
    for (int64_t a = 0; a < n_sources; ++a) {
      const int64_t j = sources[a];
      const float* sw = source_weight + j * w;
      for (int64_t c = 0; c < w; ++c) columns[c * padded + a] = sw[c];
      const float* sv = source_value + j * d;
      float* pv = values.data() + a * d;
      const float mask = source_mask[j];
#pragma omp simd
      for (int64_t t = 0; t < d; ++t) pv[t] = mask * sv[t];
    }
  }

  // dots (n_readers, padded) = reader weights x columns. With W known at compile time two readers
  // go at a time, so every column block loaded serves both.
  template <int64_t W>
  void dot(int64_t w, const float* reader_weight, const int32_t* readers, int64_t n_readers) {
    const int64_t ww = W > 0 ? W : w;
    reserve(dots, n_readers * padded);
    int64_t r = 0;
    if constexpr (W > 0) {
      for (; r + 2 <= n_readers; r += 2) {
        const float* w0 = reader_weight + static_cast<int64_t>(readers[r]) * W;
        const float* w1 = reader_weight + static_cast<int64_t>(readers[r + 1]) * W;
        for (int64_t a0 = 0; a0 < padded; a0 += kSourceBlock) {
          float p0[2][kSourceBlock] = {}, p1[2][kSourceBlock] = {};
          for (int64_t c = 0; c < W; c += 2) {
            for (int64_t u = 0; u < 2; ++u) {
              const float c0 = w0[c + u], c1 = w1[c + u];
              const float* col = columns.data() + (c + u) * padded + a0;
#pragma omp simd
              for (int64_t a = 0; a < kSourceBlock; ++a) {
                p0[u][a] += c0 * col[a];
                p1[u][a] += c1 * col[a];
              }
            }
          }
          float* d0 = dots.data() + r * padded + a0;
          float* d1 = d0 + padded;
#pragma omp simd
          for (int64_t a = 0; a < kSourceBlock; ++a) {
            d0[a] = p0[0][a] + p0[1][a];
            d1[a] = p1[0][a] + p1[1][a];
          }
        }
      }
    }
    for (; r < n_readers; ++r) {
      const float* rw = reader_weight + static_cast<int64_t>(readers[r]) * ww;
      for (int64_t a0 = 0; a0 < padded; a0 += kSourceBlock) {
        float part[kSourceBlock] = {};
        for (int64_t c = 0; c < ww; ++c) {
          const float coef = rw[c];
          const float* col = columns.data() + c * padded + a0;
#pragma omp simd
          for (int64_t a = 0; a < kSourceBlock; ++a) part[a] += coef * col[a];
        }
        std::copy_n(part, kSourceBlock, dots.data() + r * padded + a0);
      }
    }
  }

  // out[readers[r]] += sum_s dots[r][s] values[s]. With D known the accumulators of two readers
  // stay in registers and every packed value loaded serves both.
  template <int64_t D>
  void apply(int64_t d, int64_t n_sources, const int32_t* readers, int64_t n_readers, float* out) {
    const int64_t dd = D > 0 ? D : d;
    int64_t r = 0;
    if constexpr (D > 0) {
      for (; r + 2 <= n_readers; r += 2) {
        const float* d0 = dots.data() + r * padded;
        const float* d1 = d0 + padded;
        float acc0[D] = {}, acc1[D] = {};
        for (int64_t a = 0; a < n_sources; ++a) {
          const float c0 = d0[a], c1 = d1[a];
          const float* pv = values.data() + a * D;
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) {
            acc0[t] += c0 * pv[t];
            acc1[t] += c1 * pv[t];
          }
        }
        float* o0 = out + static_cast<int64_t>(readers[r]) * D;
        float* o1 = out + static_cast<int64_t>(readers[r + 1]) * D;
#pragma omp simd
        for (int64_t t = 0; t < D; ++t) {
          o0[t] += acc0[t];
          o1[t] += acc1[t];
        }
      }
    }
    reserve(acc, dd);
    for (; r < n_readers; ++r) {
      const float* d0 = dots.data() + r * padded;
      std::fill(acc.begin(), acc.begin() + dd, 0.0f);
      for (int64_t a = 0; a < n_sources; ++a) {
        const float c0 = d0[a];
        const float* pv = values.data() + a * dd;
#pragma omp simd
        for (int64_t t = 0; t < dd; ++t) acc[t] += c0 * pv[t];
      }
      float* o = out + static_cast<int64_t>(readers[r]) * dd;
#pragma omp simd
      for (int64_t t = 0; t < dd; ++t) o[t] += acc[t];
    }
  }

  // All three steps, with the widths dispatched to the compile-time kernels where w = d is common.
  void run(int64_t w, int64_t d, const float* source_weight, const float* source_value, const float* source_mask,
           const int32_t* sources, int64_t n_sources, const float* reader_weight, const int32_t* readers,
           int64_t n_readers, float* out) {
    pack(w, d, source_weight, source_value, source_mask, sources, n_sources);
    YOSO_DISPATCH_WIDTH(w == d ? d : 0, N, dot_apply<N>(w, d, n_sources, reader_weight, readers, n_readers, out));
  }

  template <int64_t N>
  void dot_apply(int64_t w, int64_t d, int64_t n_sources, const float* reader_weight, const int32_t* readers,
                 int64_t n_readers, float* out) {
    dot<N>(w, reader_weight, readers, n_readers);
    apply<N>(d, n_sources, readers, n_readers, out);
  }
};

}  // namespace yoso
