// Cost models of the CPU kernels: which of two exact forms is cheaper for one bucket. The CUDA
// kernels always use one form, so these live with the CPU code.
#pragma once

#include <cstdint>

namespace yoso {

// Weighted cumulation, one bucket with nq queries and nk keys, weight dim w, value dim d: a
// (w x d) table of sum_j kw_j (x) v_j costs (nq + nk) w d; pairwise dot products cost nq nk (w + d).
inline bool bucket_table_is_cheaper(int64_t nq, int64_t nk, int64_t w, int64_t d) {
  return nq * nk * (w + d) > (nq + nk) * w * d;
}

// LSH backward, one bucket with nq queries and nk keys, query/key dim d, value dim dv: pairwise dot
// products g.v serve both gradients, nq nk (dv + 2 d); the table form sums v (x) k and g (x) q over
// the bucket, 2 (nq + nk) dv d.
inline bool backward_table_is_cheaper(int64_t nq, int64_t nk, int64_t d, int64_t dv) {
  return nq * nk * (dv + 2 * d) > 2 * (nq + nk) * dv * d;
}

}  // namespace yoso
