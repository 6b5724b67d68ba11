// LSH cumulation on the CPU: for a group of hashes, unmasked keys add their value into compact
// tables of the buckets that occur (a code -> slot map, so 2^16-row tables cost nothing when
// unused), then unmasked queries read their buckets' rows. Linear in the sequence length; values
// and outputs pass through memory once per group; inner loops run over head_dim.
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "../checks.h"
#include "../common.h"
#include "block_gemm.h"
#include "buckets.h"
#include "width.h"

namespace yoso {
namespace {

// Bytes of bucket tables one task keeps for a group of hashes: small enough for the L2 cache, so
// that values and outputs stream through memory once per group instead of once per hash.
constexpr int64_t kTableGroupBytes = int64_t(512) << 10;

template <typename scalar_t>
struct CumulationWorker {
  const int32_t* query_codes;  // (bh, n_q, m)
  const int32_t* key_codes;    // (bh, n_k, m)
  const float* query_mask;     // (bh, n_q)
  const float* key_mask;       // (bh, n_k)
  const scalar_t* value;       // (bh, n_k, d), float32, bfloat16 or float16
  int64_t n_q, n_k, d, m, rows, table_rows_used, group;
  std::vector<int32_t> slot;   // (group, rows): compact row of each bucket, -1 while empty
  std::vector<int32_t> used;   // (group,): rows in use per hash
  std::vector<float> table;    // (group, min(rows, n_k), d)
  std::vector<float> widened;  // (d,): a key's masked value in float32

  CumulationWorker(const int32_t* qc, const int32_t* kc, const float* qm, const float* km, const scalar_t* v,
                   int64_t n_q_, int64_t n_k_, int64_t d_, int64_t m_, int64_t rows_)
      : query_codes(qc),
        key_codes(kc),
        query_mask(qm),
        key_mask(km),
        value(v),
        n_q(n_q_),
        n_k(n_k_),
        d(d_),
        m(m_),
        rows(rows_),
        table_rows_used(std::max<int64_t>(1, std::min(rows_, n_k_))) {
    const int64_t per_hash = table_rows_used * d * static_cast<int64_t>(sizeof(float));
    group = std::max<int64_t>(1, std::min<int64_t>(m, kTableGroupBytes / std::max<int64_t>(1, per_hash)));
    slot.assign(group * rows, -1);
    used.assign(group, 0);
    table.resize(group * table_rows_used * d);
    widened.resize(d);
  }

  // With the value width D known at compile time (0: run time), a key's value and a query's sum
  // over the group's hashes stay in registers: one load per key and one store per query per group.
  template <int64_t D>
  void run(int64_t b, int64_t f_begin, int64_t f_end, float* out) {
    const int64_t dd = D > 0 ? D : d;
    const float* qm = query_mask + b * n_q;
    const float* km = key_mask + b * n_k;
    const int32_t* qc = query_codes + b * n_q * m;  // code of query i, hash f: qc[i * m + f]
    const int32_t* kc = key_codes + b * n_k * m;
    float local[D > 0 ? D : 1];
    for (int64_t f0 = f_begin; f0 < f_end; f0 += group) {
      const int64_t count = std::min(group, f_end - f0);
      std::fill(used.begin(), used.end(), 0);
      for (int64_t j = 0; j < n_k; ++j) {
        if (km[j] == 0.0f) continue;
        // the masked value, widened to float32 once per group of hashes
        float* v = D > 0 ? local : widened.data();
        load_row(value + (b * n_k + j) * dd, v, dd, km[j]);
        for (int64_t g = 0; g < count; ++g) {
          int32_t& s = slot[g * rows + kc[j * m + f0 + g]];
          float* rows_g = table.data() + g * table_rows_used * dd;
          if (s < 0) {
            s = used[g]++;
            float* row = rows_g + static_cast<int64_t>(s) * dd;
#pragma omp simd
            for (int64_t t = 0; t < dd; ++t) row[t] = v[t];
          } else {
            float* row = rows_g + static_cast<int64_t>(s) * dd;
#pragma omp simd
            for (int64_t t = 0; t < dd; ++t) row[t] += v[t];
          }
        }
      }
      for (int64_t i = 0; i < n_q; ++i) {
        if (qm[i] == 0.0f) continue;
        float* o = out + i * dd;
        float* acc = D > 0 ? local : o;
        if constexpr (D > 0) std::fill(local, local + D, 0.0f);
        for (int64_t g = 0; g < count; ++g) {
          const int32_t s = slot[g * rows + qc[i * m + f0 + g]];
          if (s < 0) continue;
          const float* row = table.data() + (g * table_rows_used + s) * dd;
#pragma omp simd
          for (int64_t t = 0; t < dd; ++t) acc[t] += row[t];
        }
        if constexpr (D > 0) {
#pragma omp simd
          for (int64_t t = 0; t < D; ++t) o[t] += local[t];
        }
      }
      for (int64_t j = 0; j < n_k; ++j) {
        for (int64_t g = 0; g < count; ++g) slot[g * rows + kc[j * m + f0 + g]] = -1;
      }
    }
  }

  void operator()(int64_t b, int64_t f_begin, int64_t f_end, float* out) {
    YOSO_DISPATCH_WIDTH(d, D, run<D>(b, f_begin, f_end, out));
  }
};

at::Tensor lsh_cumulation_cpu(const at::Tensor& query_codes, const at::Tensor& key_codes, const at::Tensor& query_mask,
                              const at::Tensor& key_mask, const at::Tensor& value, int64_t hash_code_len) {
  check_cumulation_inputs(query_codes, key_codes, query_mask, key_mask, value, hash_code_len);
  const int64_t bh = value.size(0), n_k = value.size(1), d = value.size(2);
  const int64_t n_q = query_codes.size(1), m = query_codes.size(2), rows = table_rows(hash_code_len);
  const at::Tensor qc = query_codes.contiguous();  // (bh, n_q, m)
  const at::Tensor kc = key_codes.contiguous();    // (bh, n_k, m)
  const at::Tensor qm = query_mask.to(at::kFloat).contiguous();
  const at::Tensor km = key_mask.to(at::kFloat).contiguous();
  const at::Tensor v = rows_of(value);  // float32, bfloat16 and float16 are read as they are
  const int32_t* qc_ptr = qc.const_data_ptr<int32_t>();
  const int32_t* kc_ptr = kc.const_data_ptr<int32_t>();
  const float* qm_ptr = qm.const_data_ptr<float>();
  const float* km_ptr = km.const_data_ptr<float>();
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, v.scalar_type(), "yoso_lsh_cumulation_cpu", [&] {
    const scalar_t* v_ptr = v.const_data_ptr<scalar_t>();
    out = accumulate_over_hashes(bh, n_q, d, m, qm, [&] {
      return CumulationWorker<scalar_t>(qc_ptr, kc_ptr, qm_ptr, km_ptr, v_ptr, n_q, n_k, d, m, rows);
    });
  });
  return out;
}

}  // namespace
}  // namespace yoso

TORCH_LIBRARY_IMPL(yoso, CPU, m) { m.impl("lsh_cumulation", &yoso::lsh_cumulation_cpu); }
