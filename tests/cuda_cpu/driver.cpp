// yoso's CUDA kernels (yoso_core/csrc/cuda/*.cuh) run on the CPU under tests/cuda_cpu/cuda_cpu.h,
// at their launchers' grid, block and shared-memory sizes (the launch plans of the headers, which
// the .cu launchers call too), with the launchers' zeroing, chunking and scaling, and compared
// with plain loops written from the formulas (DESIGN.md, docs/kernels.md) on the same inputs and
// hash codes: codes bit-identical, float32 within 1e-5 relative. Every case runs in every thread
// order (forward, reverse, random).
//
//   driver                      every operator, every order; exit 1 when a case fails
//   driver --only OP            one operator (fast_hash, lsh_cumulation, lsh_weighted_cumulation,
//                               lsh_backward)
//   driver --order ORDER        one order (forward, reverse, random)
//   driver --emulator           the execution model's own checks (what it must accept and refuse)
//   driver --plant overrun      a kernel writing one float past its dynamic shared memory (for
//                               AddressSanitizer to report)
//   driver --io DIR             the cases listed in DIR/cases.txt on the inputs in DIR (written by
//                               tests/test_cuda_cpu.py from torch), outputs written beside them for
//                               the test to compare with the project's reference
//
// Build: g++ -std=c++17 -ffp-contract=off -I<repo root> tests/cuda_cpu/driver.cpp
// (tests/test_cuda_cpu.py adds -fsanitize=address,undefined).
#include "cuda_cpu.h"

#include "yoso_core/csrc/cuda/fast_hash.cuh"
#include "yoso_core/csrc/cuda/lsh_backward.cuh"
#include "yoso_core/csrc/cuda/lsh_cumulation.cuh"
#include "yoso_core/csrc/cuda/lsh_weighted_cumulation.cuh"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <random>
#include <string>
#include <vector>

namespace {

using cuda_cpu::Device;
using cuda_cpu::Order;

constexpr double kRtol = 1e-5;
constexpr uint64_t kSeed = 20211;

// ---------------------------------------------------------------------------------------------
// Low-precision rows, as the fast hash reads them (widened to float32 in the kernel).

struct BFloat16 {
  uint16_t bits;
  operator float() const {
    const uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, sizeof(f));
    return f;
  }
  static BFloat16 from(float f) {  // round to nearest even
    uint32_t u;
    std::memcpy(&u, &f, sizeof(u));
    u += 0x7fffu + ((u >> 16) & 1u);
    return BFloat16{static_cast<uint16_t>(u >> 16)};
  }
};

struct Half {
  uint16_t bits;
  operator float() const {
    const int sign = bits >> 15, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
    float magnitude;
    if (exponent == 0) {
      magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    } else if (exponent == 31) {
      magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
    } else {
      magnitude = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
    }
    return sign ? -magnitude : magnitude;
  }
  static Half from(float f) {  // for |f| < 2: normal halves (and zero), round to nearest even
    const uint16_t sign = f < 0 ? 0x8000 : 0;
    const float a = std::fabs(f);
    if (a < std::ldexp(1.0f, -14)) return Half{sign};  // flush tiny values: exact as a half zero
    int exponent;
    const float fraction = std::frexp(a, &exponent);          // a = fraction * 2^exponent, fraction in [0.5, 1)
    const float scaled = std::nearbyint(fraction * 2048.0f);  // 11 significant bits
    uint32_t mantissa = static_cast<uint32_t>(scaled);
    if (mantissa == 2048) mantissa = 1024, ++exponent;
    return Half{static_cast<uint16_t>(sign | ((exponent - 1 + 15) << 10) | (mantissa & 0x3ff))};
  }
};

// ---------------------------------------------------------------------------------------------
// Inputs

struct Rng {
  std::mt19937_64 gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(gen); }
  int64_t below(int64_t n) { return std::uniform_int_distribution<int64_t>(0, n - 1)(gen); }
};

std::vector<float> normal(Rng& rng, int64_t count) {
  std::vector<float> x(count);
  for (float& v : x) v = rng.normal();
  return x;
}

// (rows, d) unit rows, as the attention's queries and keys
std::vector<float> unit_rows(Rng& rng, int64_t rows, int64_t d) {
  std::vector<float> x = normal(rng, rows * d);
  for (int64_t r = 0; r < rows; ++r) {
    double norm = 0;
    for (int64_t t = 0; t < d; ++t) norm += double(x[r * d + t]) * x[r * d + t];
    const float scale = static_cast<float>(1.0 / std::sqrt(std::max(norm, 1e-30)));
    for (int64_t t = 0; t < d; ++t) x[r * d + t] *= scale;
  }
  return x;
}

enum class Masks { ones, mixed, zeros };

// (count) of 1, or of 0 / 0.5 / 1 drawn at random, or of 0
std::vector<float> masks(Rng& rng, int64_t count, Masks kind) {
  std::vector<float> m(count, kind == Masks::zeros ? 0.0f : 1.0f);
  if (kind == Masks::mixed) {
    for (float& v : m) v = 0.5f * static_cast<float>(rng.below(3));
  }
  return m;
}

// Codes in [0, rows): uniform, or drawn from `cluster` fixed codes (full buckets, and collisions
// among 2^16 rows).
std::vector<int32_t> codes(Rng& rng, int64_t count, int64_t rows, int64_t cluster, const std::vector<int32_t>& pool) {
  std::vector<int32_t> c(count);
  for (int32_t& v : c) {
    v = cluster > 0 ? pool[rng.below(cluster)] : static_cast<int32_t>(rng.below(rows));
  }
  return c;
}

std::vector<int32_t> code_pool(Rng& rng, int64_t rows, int64_t cluster) {
  std::vector<int32_t> pool(std::max<int64_t>(cluster, 1));
  for (int32_t& v : pool) v = static_cast<int32_t>(rng.below(rows));
  return pool;
}

// ---------------------------------------------------------------------------------------------
// Comparison: |actual - expected| <= atol + rtol |expected| elementwise, atol = rtol max|expected|
// (tests/helpers.py's assert_close_rel).

struct Result {
  bool ok = true;
  double error = 0;  // max |actual - expected| / max |expected|
  std::string detail;
};

void compare(Result& result, const char* name, const std::vector<float>& actual, const std::vector<double>& expected) {
  double scale = 1e-12;
  for (double e : expected) scale = std::max(scale, std::fabs(e));
  const double atol = kRtol * scale;
  double worst = 0;
  int64_t bad = -1;
  for (size_t k = 0; k < expected.size(); ++k) {
    const double diff = std::fabs(double(actual[k]) - expected[k]);
    if (!(diff <= atol + kRtol * std::fabs(expected[k])) && bad < 0) bad = static_cast<int64_t>(k);
    worst = std::isnan(diff) ? diff : std::max(worst, diff);  // a NaN stays
  }
  if (std::isnan(worst) || !(worst / scale <= result.error)) result.error = worst / scale;
  if (bad >= 0 && result.ok) {
    result.ok = false;
    char text[200];
    std::snprintf(text, sizeof(text), "%s[%lld] = %.8g, expected %.8g", name, static_cast<long long>(bad),
                  double(actual[bad]), expected[bad]);
    result.detail = text;
  }
}

// ---------------------------------------------------------------------------------------------
// fast_hash

struct FastHashCase {
  int64_t bh, n, d, m, tau;
  int dtype;  // 0 float32, 1 bfloat16, 2 float16
};

// The launcher of fast_hash.cu on the emulated device.
template <typename scalar_t>
std::vector<int32_t> fast_hash_cuda(Device& device, const std::vector<scalar_t>& x, const std::vector<float>& diag,
                                    const FastHashCase& c, int64_t rotations_stored) {
  const yoso::FastHashLaunch launch = yoso::fast_hash_launch(c.bh, c.n, c.d, c.m);
  std::vector<int32_t> out(c.bh * c.n * c.m, -7);  // at::empty: unwritten codes show
  device.launch(yoso::fast_hash_kernel<scalar_t>, dim3(launch.grid_x, launch.grid_y), dim3(launch.threads),
                launch.shared_bytes, x.data(), diag.data(), out.data(), c.n, c.d, yoso::padded_dim(c.d),
                yoso::num_rotations(c.d, c.m, c.tau), rotations_stored, c.m, c.tau, launch.tile);
  return out;
}

// hashing.py's fast_hash: y = H D3 H D2 H D1 pad(x), float32 in the reference's order; bit b of
// hash f is coordinate f * tau + b of the rotations concatenated, set when > 0.
std::vector<int32_t> fast_hash_reference(const std::vector<float>& x, const std::vector<float>& diag,
                                         const FastHashCase& c, int64_t rotations_stored) {
  const int64_t p = yoso::padded_dim(c.d), rotations = yoso::num_rotations(c.d, c.m, c.tau);
  std::vector<int32_t> out(c.bh * c.n * c.m, 0);
  std::vector<float> y(rotations * p);
  for (int64_t b = 0; b < c.bh; ++b) {
    for (int64_t i = 0; i < c.n; ++i) {
      for (int64_t r = 0; r < rotations; ++r) {
        float* yr = y.data() + r * p;
        for (int64_t t = 0; t < p; ++t) yr[t] = t < c.d ? x[(b * c.n + i) * c.d + t] : 0.0f;
        for (int64_t round = 0; round < 3; ++round) {
          const float* dr = diag.data() + ((b * rotations_stored + r) * 3 + round) * p;
          for (int64_t t = 0; t < p; ++t) yr[t] = yr[t] * dr[t];
          for (int64_t h = 1; h < p; h *= 2) {
            for (int64_t block = 0; block < p; block += 2 * h) {
              for (int64_t t = block; t < block + h; ++t) {
                const float a = yr[t], bb = yr[t + h];
                yr[t] = a + bb;
                yr[t + h] = a - bb;
              }
            }
          }
        }
      }
      for (int64_t f = 0; f < c.m; ++f) {
        int32_t code = 0;
        for (int64_t bit = 0; bit < c.tau; ++bit) {
          if (y[f * c.tau + bit] > 0.0f) code |= int32_t(1) << bit;
        }
        out[(b * c.n + i) * c.m + f] = code;
      }
    }
  }
  return out;
}

Result run_fast_hash(Device& device, const FastHashCase& c, uint64_t seed) {
  Rng rng(seed);
  const int64_t p = yoso::padded_dim(c.d), rotations = yoso::num_rotations(c.d, c.m, c.tau);
  const int64_t stored = rotations + 1;  // the kernel must use the stored stride, not its own count
  std::vector<float> x = normal(rng, c.bh * c.n * c.d);
  std::vector<float> diag(c.bh * stored * 3 * p);
  for (float& v : diag) v = rng.below(2) ? 1.0f : -1.0f;
  std::vector<int32_t> actual;
  if (c.dtype == 1) {
    std::vector<BFloat16> low(x.size());
    for (size_t k = 0; k < x.size(); ++k) low[k] = BFloat16::from(x[k]), x[k] = low[k];
    actual = fast_hash_cuda(device, low, diag, c, stored);
  } else if (c.dtype == 2) {
    std::vector<Half> low(x.size());
    for (size_t k = 0; k < x.size(); ++k) low[k] = Half::from(x[k] / 4), x[k] = low[k];
    actual = fast_hash_cuda(device, low, diag, c, stored);
  } else {
    actual = fast_hash_cuda(device, x, diag, c, stored);
  }
  const std::vector<int32_t> expected = fast_hash_reference(x, diag, c, stored);
  Result result;
  for (size_t k = 0; k < expected.size(); ++k) {
    if (actual[k] != expected[k]) {
      result.ok = false;
      result.error = 1;
      result.detail = "codes[" + std::to_string(k) + "] = " + std::to_string(actual[k]) + ", expected " +
                      std::to_string(expected[k]);
      break;
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The cumulations and the backward share their inputs.

struct CumulationCase {
  int64_t bh, n_q, n_k, d, dv, m, tau;
  Masks mask_kind;
  int64_t cluster;       // 0: uniform codes; else codes from this many fixed buckets
  int64_t budget_bytes;  // the launchers' table budget (0: theirs, kTableBudgetBytes)
  int64_t w;             // weight columns (lsh_weighted_cumulation)
};

struct Inputs {
  std::vector<int32_t> qc, kc;  // (bh, n, m)
  std::vector<float> qm, km;    // (bh, n)
  std::vector<float> q, k;      // (bh, n, d) unit rows
  std::vector<float> v, g;      // (bh, n_k, dv), (bh, n_q, dv)
  std::vector<float> qw, kw;    // (bh, n, w)
};

Inputs make_inputs(const CumulationCase& c, uint64_t seed) {
  Rng rng(seed);
  const int64_t rows = yoso::table_rows(c.tau);
  Inputs in;
  const std::vector<int32_t> pool = code_pool(rng, rows, c.cluster);
  in.qc = codes(rng, c.bh * c.n_q * c.m, rows, c.cluster, pool);
  in.kc = codes(rng, c.bh * c.n_k * c.m, rows, c.cluster, pool);
  in.qm = masks(rng, c.bh * c.n_q, c.mask_kind);
  in.km = masks(rng, c.bh * c.n_k, c.mask_kind);
  in.q = unit_rows(rng, c.bh * c.n_q, c.d);
  in.k = unit_rows(rng, c.bh * c.n_k, c.d);
  in.v = normal(rng, c.bh * c.n_k * c.dv);
  in.g = normal(rng, c.bh * c.n_q * c.dv);
  in.qw = normal(rng, c.bh * c.n_q * c.w);
  in.kw = normal(rng, c.bh * c.n_k * c.w);
  return in;
}

int64_t budget_of(const CumulationCase& c) { return c.budget_bytes > 0 ? c.budget_bytes : yoso::kTableBudgetBytes; }

// at::empty of the launchers: junk until zeroed
std::vector<float> empty_table(int64_t count) {
  return std::vector<float>(count, std::numeric_limits<float>::quiet_NaN());
}

// The launcher of lsh_cumulation.cu (value of width dv) on the emulated device.
std::vector<float> lsh_cumulation_cuda(Device& device, const Inputs& in, const CumulationCase& c) {
  const int64_t bh = c.bh, n_q = c.n_q, n_k = c.n_k, d = c.dv, m = c.m, rows = yoso::table_rows(c.tau);
  std::vector<float> out(bh * n_q * d, 0.0f);
  const yoso::CumulationLaunch launch = yoso::lsh_cumulation_launch(bh, n_q, n_k, d, m, rows, budget_of(c));
  std::vector<float> table = empty_table(bh * launch.chunk * rows * d);
  yoso::lsh_cumulation_passes(
      launch, n_k, m,
      [&](int64_t count) {
        for (int64_t b = 0; b < bh; ++b) {
          std::fill_n(table.begin() + b * launch.chunk * rows * d, count * rows * d, 0.0f);
        }
      },
      [&](int64_t f0, int64_t count) {
        device.launch(yoso::scatter_kernel, dim3(launch.scatter_blocks), dim3(launch.threads), 0, in.kc.data(),
                      in.km.data(), in.v.data(), table.data(), n_k, d, m, f0, count, launch.chunk, rows);
      },
      [&](int64_t f0, int64_t count) {
        device.launch(yoso::gather_kernel, dim3(launch.gather_blocks), dim3(launch.threads), 0, in.qc.data(),
                      table.data(), out.data(), n_q, d, m, f0, count, launch.chunk, rows);
      });
  const float scale = static_cast<float>(1.0 / static_cast<double>(m));
  for (int64_t r = 0; r < bh * n_q; ++r) {
    for (int64_t t = 0; t < d; ++t) out[r * d + t] *= in.qm[r] * scale;
  }
  return out;
}

// out_i = qm_i / m sum_f sum_j [qc_if == kc_jf] km_j (qw_i . kw_j if weighted) v_j
std::vector<double> cumulation_reference(const Inputs& in, const CumulationCase& c, bool weighted) {
  const int64_t bh = c.bh, n_q = c.n_q, n_k = c.n_k, d = c.dv, m = c.m, w = c.w;
  std::vector<double> out(bh * n_q * d, 0.0);
  for (int64_t b = 0; b < bh; ++b) {
    for (int64_t i = 0; i < n_q; ++i) {
      double* o = out.data() + (b * n_q + i) * d;
      for (int64_t j = 0; j < n_k; ++j) {
        int64_t collisions = 0;
        for (int64_t f = 0; f < m; ++f) collisions += in.qc[(b * n_q + i) * m + f] == in.kc[(b * n_k + j) * m + f];
        if (collisions == 0) continue;
        double weight = double(in.km[b * n_k + j]) * collisions;
        if (weighted) {
          double dot = 0;
          for (int64_t c2 = 0; c2 < w; ++c2)
            dot += double(in.qw[(b * n_q + i) * w + c2]) * in.kw[(b * n_k + j) * w + c2];
          weight *= dot;
        }
        for (int64_t t = 0; t < d; ++t) o[t] += weight * in.v[(b * n_k + j) * d + t];
      }
      for (int64_t t = 0; t < d; ++t) o[t] *= double(in.qm[b * n_q + i]) / double(m);
    }
  }
  return out;
}

Result run_lsh_cumulation(Device& device, const CumulationCase& c, uint64_t seed) {
  const Inputs in = make_inputs(c, seed);
  Result result;
  compare(result, "out", lsh_cumulation_cuda(device, in, c), cumulation_reference(in, c, false));
  return result;
}

// The launcher of lsh_weighted_cumulation.cu on the emulated device.
std::vector<float> lsh_weighted_cumulation_cuda(Device& device, const Inputs& in, const CumulationCase& c) {
  const int64_t bh = c.bh, n_q = c.n_q, n_k = c.n_k, d = c.dv, m = c.m, w = c.w, rows = yoso::table_rows(c.tau);
  std::vector<float> out(bh * n_q * d, 0.0f);
  if (w == 0) return out;
  const yoso::WeightedCumulationLaunch launch =
      yoso::lsh_weighted_cumulation_launch(bh, n_q, n_k, w, d, rows, budget_of(c));
  std::vector<float> table = empty_table(bh * rows * launch.chunk * d);
  yoso::GatherArgs gather;
  gather.query_codes = in.qc.data();
  gather.query_weight = in.qw.data();
  gather.table = table.data();
  gather.out = out.data();
  gather.n_q = n_q, gather.w = w, gather.d = d, gather.m = m, gather.chunk = launch.chunk, gather.rows = rows;
  yoso::lsh_weighted_cumulation_passes(
      launch, n_k, w, m, [&] { std::fill(table.begin(), table.end(), 0.0f); },
      [&](int64_t f, int64_t c0, int64_t count) {
        device.launch(yoso::weighted_scatter_kernel, dim3(launch.scatter_blocks),
                      dim3(launch.scatter_threads(count, d)), 0, in.kc.data(), in.km.data(), in.kw.data(), in.v.data(),
                      table.data(), n_k, w, d, m, f, c0, count, launch.chunk, rows);
      },
      [&](int64_t f, int64_t c0, int64_t count) {
        gather.f = f, gather.c0 = c0, gather.count = count;
        device.launch(yoso::weighted_gather_kernel, dim3(launch.gather_blocks), dim3(launch.gather_threads), 0, gather);
      });
  const float scale = static_cast<float>(1.0 / static_cast<double>(m));
  for (int64_t r = 0; r < bh * n_q; ++r) {
    for (int64_t t = 0; t < d; ++t) out[r * d + t] *= in.qm[r] * scale;
  }
  return out;
}

Result run_lsh_weighted_cumulation(Device& device, const CumulationCase& c, uint64_t seed) {
  const Inputs in = make_inputs(c, seed);
  Result result;
  compare(result, "out", lsh_weighted_cumulation_cuda(device, in, c), cumulation_reference(in, c, true));
  return result;
}

struct Gradients {
  std::vector<float> gq, gk, gv;
};

// The launcher of lsh_backward.cu on the emulated device: keys sorted stably by bucket per
// (b, f), masked keys past the last bucket; each query's range by lower and upper bound.
Gradients lsh_backward_cuda(Device& device, const Inputs& in, const CumulationCase& c) {
  const int64_t bh = c.bh, n_q = c.n_q, n_k = c.n_k, d = c.d, dv = c.dv, m = c.m, rows = yoso::table_rows(c.tau);
  Gradients out{std::vector<float>(bh * n_q * d, 0.0f), std::vector<float>(bh * n_k * d, 0.0f),
                std::vector<float>(bh * n_k * dv, 0.0f)};
  if (bh > 0 && n_q > 0 && n_k > 0) {
    std::vector<int64_t> order(bh * m * n_k), first(bh * m * n_q), last(bh * m * n_q);
    std::vector<int64_t> sorted(n_k);
    for (int64_t b = 0; b < bh; ++b) {
      for (int64_t f = 0; f < m; ++f) {
        auto code = [&](int64_t j) -> int64_t {
          return in.km[b * n_k + j] != 0.0f ? in.kc[(b * n_k + j) * m + f] : rows;
        };
        int64_t* keys = order.data() + (b * m + f) * n_k;
        for (int64_t j = 0; j < n_k; ++j) keys[j] = j;
        std::stable_sort(keys, keys + n_k, [&](int64_t x, int64_t y) { return code(x) < code(y); });
        for (int64_t p = 0; p < n_k; ++p) sorted[p] = code(keys[p]);
        for (int64_t i = 0; i < n_q; ++i) {
          const int64_t qc = in.qc[(b * n_q + i) * m + f];
          first[(b * m + f) * n_q + i] = std::lower_bound(sorted.begin(), sorted.end(), qc) - sorted.begin();
          last[(b * m + f) * n_q + i] = std::upper_bound(sorted.begin(), sorted.end(), qc) - sorted.begin();
        }
      }
    }
    const yoso::BackwardLaunch launch = yoso::lsh_backward_launch(bh, n_q, m);
    yoso::BackwardArgs args;
    args.order = order.data();
    args.first = first.data();
    args.last = last.data();
    args.query_mask = in.qm.data();
    args.key_mask = in.km.data();
    args.query = in.q.data();
    args.key = in.k.data();
    args.value = in.v.data();
    args.grad = in.g.data();
    args.grad_query = out.gq.data();
    args.grad_key = out.gk.data();
    args.grad_value = out.gv.data();
    args.bh = bh, args.n_q = n_q, args.n_k = n_k, args.d = d, args.dv = dv, args.m = m;
    device.launch(yoso::backward_kernel, dim3(launch.blocks), dim3(launch.threads), 0, args);
  }
  const double scale = 1.0 / static_cast<double>(m), half_tau = 0.5 * static_cast<double>(c.tau);
  for (int64_t r = 0; r < bh * n_q; ++r) {
    for (int64_t t = 0; t < d; ++t) out.gq[r * d + t] *= in.qm[r] * static_cast<float>(scale * half_tau);
  }
  for (int64_t r = 0; r < bh * n_k; ++r) {
    for (int64_t t = 0; t < d; ++t) out.gk[r * d + t] *= in.km[r] * static_cast<float>(scale * half_tau);
    for (int64_t t = 0; t < dv; ++t) out.gv[r * dv + t] *= in.km[r] * static_cast<float>(scale);
  }
  return out;
}

// grad_value_j = km_j / m         sum_f sum_i [collide] qm_i g_i
// grad_query_i = qm_i tau/2 / m   sum_f sum_j [collide] km_j (g_i . v_j) k_j
// grad_key_j   = km_j tau/2 / m   sum_f sum_i [collide] qm_i (g_i . v_j) q_i
Result run_lsh_backward(Device& device, const CumulationCase& c, uint64_t seed) {
  const Inputs in = make_inputs(c, seed);
  const int64_t bh = c.bh, n_q = c.n_q, n_k = c.n_k, d = c.d, dv = c.dv, m = c.m;
  std::vector<double> gq(bh * n_q * d, 0.0), gk(bh * n_k * d, 0.0), gv(bh * n_k * dv, 0.0);
  for (int64_t b = 0; b < bh; ++b) {
    for (int64_t i = 0; i < n_q; ++i) {
      for (int64_t j = 0; j < n_k; ++j) {
        int64_t collisions = 0;
        for (int64_t f = 0; f < m; ++f) collisions += in.qc[(b * n_q + i) * m + f] == in.kc[(b * n_k + j) * m + f];
        if (collisions == 0) continue;
        const double qm = in.qm[b * n_q + i], km = in.km[b * n_k + j];
        double dot = 0;
        for (int64_t t = 0; t < dv; ++t) dot += double(in.g[(b * n_q + i) * dv + t]) * in.v[(b * n_k + j) * dv + t];
        for (int64_t t = 0; t < d; ++t) {
          gq[(b * n_q + i) * d + t] += collisions * km * dot * in.k[(b * n_k + j) * d + t];
          gk[(b * n_k + j) * d + t] += collisions * qm * dot * in.q[(b * n_q + i) * d + t];
        }
        for (int64_t t = 0; t < dv; ++t) gv[(b * n_k + j) * dv + t] += collisions * qm * in.g[(b * n_q + i) * dv + t];
      }
    }
  }
  const double half_tau = 0.5 * static_cast<double>(c.tau);
  for (int64_t r = 0; r < bh * n_q; ++r) {
    for (int64_t t = 0; t < d; ++t) gq[r * d + t] *= in.qm[r] * half_tau / m;
  }
  for (int64_t r = 0; r < bh * n_k; ++r) {
    for (int64_t t = 0; t < d; ++t) gk[r * d + t] *= in.km[r] * half_tau / m;
    for (int64_t t = 0; t < dv; ++t) gv[r * dv + t] *= double(in.km[r]) / m;
  }
  const Gradients actual = lsh_backward_cuda(device, in, c);
  Result result;
  compare(result, "grad_query", actual.gq, gq);
  compare(result, "grad_key", actual.gk, gk);
  compare(result, "grad_value", actual.gv, gv);
  return result;
}

// ---------------------------------------------------------------------------------------------
// The cases: sequence lengths 1, 97, 300 (queries and keys apart), head dims 1 to 320, num_hash 1
// to 256, hash_code_len 1 to 16, masks of 0 / 0.5 / 1, full buckets, the chunked table passes,
// a last block with idle warps.

const FastHashCase kFastHashCases[] = {
    {1, 1, 1, 1, 1, 0},      {2, 97, 48, 32, 8, 0},  {2, 300, 64, 32, 8, 1}, {1, 97, 320, 64, 16, 0},
    {1, 13, 33, 256, 16, 0}, {3, 97, 128, 16, 4, 2}, {1, 1, 7, 3, 5, 0},     {2, 300, 1, 4, 1, 0},
};

constexpr int64_t kHash = 4 * 2 * 256 * 40;  // bytes of one hash's tables at bh 2, tau 8, d 40

const CumulationCase kCumulationCases[] = {
    // bh, n_q, n_k, d, dv, m, tau, masks, cluster, budget, w
    {1, 1, 1, 1, 1, 1, 1, Masks::ones, 0, 0, 1},                // one query, one key
    {2, 97, 300, 64, 64, 8, 8, Masks::mixed, 0, 0, 16},         // the model's head_dim, padded masks
    {2, 300, 97, 33, 33, 4, 2, Masks::mixed, 0, 0, 5},          // full buckets (4 rows)
    {1, 97, 300, 32, 320, 3, 6, Masks::ones, 0, 0, 3},          // wide values
    {2, 97, 300, 48, 48, 16, 16, Masks::mixed, 5, 0, 8},        // 2^16 rows; the real budget chunks
    {2, 97, 300, 40, 40, 8, 8, Masks::mixed, 0, 3 * kHash, 7},  // 3 hashes (columns) a pass
    {1, 7, 13, 32, 32, 256, 3, Masks::mixed, 0, 0, 2},          // 256 hashes
    {1, 5, 9, 16, 16, 2, 2, Masks::zeros, 0, 0, 4},             // everything masked
};

const CumulationCase kBackwardCases[] = {
    {1, 1, 1, 1, 1, 1, 1, Masks::ones, 0, 0, 0},        // one query, one key
    {2, 97, 300, 64, 64, 8, 8, Masks::mixed, 0, 0, 0},  // the model's head_dim, padded masks
    {1, 97, 300, 33, 48, 2, 3, Masks::mixed, 0, 0, 0},  // full buckets (~37 keys); 194 warps: 6 idle at the end
    {1, 13, 29, 320, 17, 3, 4, Masks::mixed, 0, 0, 0},  // head_dim 320, value width 17
    {1, 3, 5, 8, 8, 256, 2, Masks::ones, 0, 0, 0},      // 256 hashes
    {2, 97, 97, 32, 32, 4, 16, Masks::mixed, 3, 0, 0},  // 2^16 rows, codes in 3 buckets
    {1, 7, 5, 16, 16, 2, 2, Masks::zeros, 0, 0, 0},     // everything masked
};

// The weighted cumulation's cases: those of the cumulation with a smaller m where it is 256
// (its passes are per hash and per column chunk).
CumulationCase weighted(CumulationCase c) {
  if (c.m > 16) c.m = 16;
  // 2^16 rows at the real budget: 8 MiB a column, so chunks of 32 of the 40 columns
  if (c.tau == 16) c.budget_bytes = 0, c.bh = 1, c.dv = c.d = 32, c.w = 40, c.m = 2;
  return c;
}

std::string describe(const FastHashCase& c) {
  static const char* dtypes[] = {"float32", "bfloat16", "float16"};
  return "bh=" + std::to_string(c.bh) + " n=" + std::to_string(c.n) + " d=" + std::to_string(c.d) +
         " m=" + std::to_string(c.m) + " tau=" + std::to_string(c.tau) + " " + dtypes[c.dtype];
}

std::string describe(const CumulationCase& c) {
  static const char* kinds[] = {"ones", "mixed", "zeros"};
  return "bh=" + std::to_string(c.bh) + " n_q=" + std::to_string(c.n_q) + " n_k=" + std::to_string(c.n_k) +
         " d=" + std::to_string(c.d) + " dv=" + std::to_string(c.dv) + " m=" + std::to_string(c.m) +
         " tau=" + std::to_string(c.tau) + " w=" + std::to_string(c.w) + " masks=" + kinds[int(c.mask_kind)] +
         (c.cluster ? " buckets=" + std::to_string(c.cluster) : std::string()) +
         (c.budget_bytes ? " budget=" + std::to_string(c.budget_bytes) : std::string());
}

struct Tally {
  int passed = 0, failed = 0;
};

template <typename Run>
void report(Tally& tally, const char* op, const std::string& what, Order order, Run run) {
  const auto start = std::chrono::steady_clock::now();
  Result result;
  try {
    result = run();
  } catch (const std::exception& e) {
    result.ok = false;
    result.detail = e.what();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s %-24s %-8s %s  error %.2e  %.2fs%s%s\n", result.ok ? "ok  " : "FAIL", op, cuda_cpu::order_name(order),
              what.c_str(), result.error, seconds, result.ok ? "" : "  ", result.detail.c_str());
  std::fflush(stdout);
  (result.ok ? tally.passed : tally.failed) += 1;
}

int run_kernels(const std::string& only, const std::vector<Order>& orders) {
  Tally tally;
  for (Order order : orders) {
    Device device(order, kSeed);
    uint64_t seed = kSeed;
    if (only.empty() || only == "fast_hash") {
      for (const FastHashCase& c : kFastHashCases) {
        report(tally, "fast_hash", describe(c), order, [&] { return run_fast_hash(device, c, ++seed); });
      }
    }
    if (only.empty() || only == "lsh_cumulation") {
      for (const CumulationCase& c : kCumulationCases) {
        report(tally, "lsh_cumulation", describe(c), order, [&] { return run_lsh_cumulation(device, c, ++seed); });
      }
    }
    if (only.empty() || only == "lsh_weighted_cumulation") {
      for (const CumulationCase& c0 : kCumulationCases) {
        const CumulationCase c = weighted(c0);
        report(tally, "lsh_weighted_cumulation", describe(c), order,
               [&] { return run_lsh_weighted_cumulation(device, c, ++seed); });
      }
    }
    if (only.empty() || only == "lsh_backward") {
      for (const CumulationCase& c : kBackwardCases) {
        report(tally, "lsh_backward", describe(c), order, [&] { return run_lsh_backward(device, c, ++seed); });
      }
    }
  }
  std::printf("%d passed, %d failed\n", tally.passed, tally.failed);
  return tally.failed == 0 && tally.passed > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// The execution model's own checks: what it must run correctly, and what it must refuse.

__global__ void rotate_through_shared(int* out, bool barrier) {
  YOSO_DYNAMIC_SHARED(int, shared);
  const int t = threadIdx.x, n = blockDim.x;
  shared[t] = t + 1000 * static_cast<int>(blockIdx.x);
  if (barrier) __syncthreads();
  out[blockIdx.x * n + t] = shared[(t + 1) % n];
}

__global__ void static_shared_per_block(int* out) {
  YOSO_STATIC_SHARED(int, cells, 64);
  const int t = threadIdx.x;
  const int unwritten = cells[t];  // junk: 0xffffffff
  __syncthreads();
  cells[t] = static_cast<int>(blockIdx.x) * 100 + t;
  __syncthreads();
  out[blockIdx.x * 64 + t] = cells[63 - t] + (unwritten == -1 ? 0 : 1000000);
}

__global__ void exit_before_barrier(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

// warp w reduces w + 1 times: the lanes of one warp shuffle together, warps independently
__global__ void uneven_warp_reductions(float* out) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  float total = 0;
  for (int round = 0; round <= warp; ++round) {
    float x = static_cast<float>(lane + round);
    for (int offset = 16; offset > 0; offset /= 2) x += __shfl_xor_sync(0xffffffffu, x, offset);
    total += x;
  }
  out[threadIdx.x] = total;
}

__global__ void shuffle_after_lane_exit(float* out) {
  if (threadIdx.x % 32 == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

__global__ void divergent_full_mask_shuffle(float* out) {
  float x = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 32 < 16) {
    x = __shfl_xor_sync(0xffffffffu, x, 1);
  } else {
    x = __shfl_down_sync(0xffffffffu, x, 1);
  }
  out[threadIdx.x] = x;
}

__global__ void half_warp_shuffles(int* out) {
  const int lane = threadIdx.x % 32;
  int x = lane;
  if (lane < 16) {
    x = __shfl_sync(0x0000ffffu, x, 0, 16) + __shfl_down_sync(0x0000ffffu, x, 1, 16) +
        __shfl_up_sync(0x0000ffffu, x, 2, 16);
  }
  out[threadIdx.x] = x;
}

__global__ void shuffle_outside_mask(int* out) {
  const int lane = threadIdx.x % 32;
  if (lane < 16) out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, lane, 16);  // lanes 16..31 not in it
}

__global__ void count_with_atomics(int* counter, float* sum) {
  atomicAdd(counter, 1);
  atomicAdd(sum, 0.5f);
}

__global__ void write_past_shared(float* out) {
  YOSO_DYNAMIC_SHARED(float, shared);
  shared[threadIdx.x] = 1.0f;  // launched with one float fewer than threads
  out[threadIdx.x] = shared[threadIdx.x];
}

int run_emulator_checks() {
  Tally tally;
  auto expect = [&](const char* what, bool ok, const std::string& detail = "") {
    std::printf("%s emulator %s%s%s\n", ok ? "ok  " : "FAIL", what, detail.empty() ? "" : ": ", detail.c_str());
    (ok ? tally.passed : tally.failed) += 1;
  };
  // the message of the fault a launch raises, or "" when it ran
  auto fault_of = [](auto&& launch) -> std::string {
    try {
      launch();
    } catch (const cuda_cpu::KernelFault& e) {
      return std::string("fault: ") + e.what();
    } catch (const cuda_cpu::LaunchRefused& e) {
      return std::string("refused: ") + e.what();
    }
    return "";
  };
  for (Order order : {Order::forward, Order::reverse, Order::random}) {
    Device device(order, kSeed);
    const std::string in = std::string(" (") + cuda_cpu::order_name(order) + ")";
    {
      std::vector<int> out(3 * 64, 0);
      const std::string fault = fault_of(
          [&] { device.launch(rotate_through_shared, dim3(3), dim3(64), 64 * sizeof(int), out.data(), true); });
      bool ok = fault.empty();
      for (int b = 0; b < 3; ++b) {
        for (int t = 0; t < 64; ++t) ok = ok && out[b * 64 + t] == (t + 1) % 64 + 1000 * b;
      }
      expect(("a barrier orders shared-memory writes before reads" + in).c_str(), ok, fault);
    }
    {
      std::vector<int> out(64, 0);
      device.launch(rotate_through_shared, dim3(1), dim3(64), 64 * sizeof(int), out.data(), false);
      int wrong = 0;
      for (int t = 0; t < 64; ++t) wrong += out[t] != (t + 1) % 64;
      // forward: thread t reads t + 1 before it is written; reverse: thread 63 reads 0 first
      const bool seen = order == Order::random ? wrong > 0 : (order == Order::forward ? wrong >= 63 : wrong >= 1);
      expect(("without the barrier, reads of unwritten (junk) shared memory show" + in).c_str(), seen,
             std::to_string(wrong) + " of 64 wrong");
    }
    {
      std::vector<int> out(2 * 64, 0);
      const std::string fault =
          fault_of([&] { device.launch(static_shared_per_block, dim3(2), dim3(64), 0, out.data()); });
      bool ok = fault.empty();
      for (int b = 0; b < 2; ++b) {
        for (int t = 0; t < 64; ++t) ok = ok && out[b * 64 + t] == b * 100 + 63 - t;
      }
      expect(("static shared memory: one junk-filled array per block" + in).c_str(), ok, fault);
    }
    {
      std::vector<int> out(64, 0);
      const std::string fault = fault_of([&] { device.launch(exit_before_barrier, dim3(1), dim3(64), 0, out.data()); });
      expect(("a thread that exits before __syncthreads is a deadlock" + in).c_str(),
             fault.find("deadlock") != std::string::npos, fault);
    }
    {
      std::vector<float> out(128, 0);
      const std::string fault =
          fault_of([&] { device.launch(uneven_warp_reductions, dim3(1), dim3(128), 0, out.data()); });
      bool ok = fault.empty();
      for (int t = 0; t < 128; ++t) {
        const int warp = t / 32;
        float expected = 0;
        for (int round = 0; round <= warp; ++round) expected += 496.0f + 32.0f * round;
        ok = ok && out[t] == expected;
      }
      expect(("warps that shuffle different numbers of times" + in).c_str(), ok, fault);
    }
    {
      std::vector<float> out(64, 0);
      const std::string fault =
          fault_of([&] { device.launch(shuffle_after_lane_exit, dim3(1), dim3(64), 0, out.data()); });
      expect(("a full-mask shuffle after a lane exited is reported" + in).c_str(),
             fault.find("which has exited") != std::string::npos, fault);
    }
    {
      std::vector<float> out(32, 0);
      const std::string fault =
          fault_of([&] { device.launch(divergent_full_mask_shuffle, dim3(1), dim3(32), 0, out.data()); });
      expect(("a divergent full-mask shuffle is reported" + in).c_str(), fault.find("fault") == 0, fault);
    }
    {
      std::vector<int> out(64, -1);
      const std::string fault = fault_of([&] { device.launch(half_warp_shuffles, dim3(1), dim3(64), 0, out.data()); });
      bool ok = fault.empty();
      for (int t = 0; t < 64; ++t) {
        const int lane = t % 32;
        const int down = lane + 1 < 16 ? lane + 1 : lane, up = lane - 2 >= 0 ? lane - 2 : lane;
        ok = ok && out[t] == (lane < 16 ? 0 + down + up : lane);
      }
      expect(("half-warp masks and widths: __shfl_sync, __shfl_down_sync, __shfl_up_sync" + in).c_str(), ok, fault);
    }
    {
      std::vector<int> out(32, 0);
      const std::string fault =
          fault_of([&] { device.launch(shuffle_outside_mask, dim3(1), dim3(32), 0, out.data()); });
      expect(("a shuffle reading a lane outside its mask is reported" + in).c_str(),
             fault.find("does not name") != std::string::npos, fault);
    }
    {
      int counter = 0;
      float sum = 0;
      device.launch(count_with_atomics, dim3(7, 2), dim3(33, 3), 0, &counter, &sum);
      expect(("atomicAdd from every thread of a 2-d grid" + in).c_str(),
             counter == 7 * 2 * 33 * 3 && sum == counter * 0.5f, std::to_string(counter));
    }
  }
  Device device;
  int counter = 0;
  float sum = 0;
  std::string fault = fault_of([&] { device.launch(count_with_atomics, dim3(1), dim3(1025), 0, &counter, &sum); });
  expect("1025 threads a block are refused", fault.find("1025 threads") != std::string::npos, fault);
  fault = fault_of([&] { device.launch(count_with_atomics, dim3(1), dim3(1, 1, 65), 0, &counter, &sum); });
  expect("a block of z 65 is refused", fault.find("refused") == 0, fault);
  fault = fault_of([&] { device.launch(count_with_atomics, dim3(1, 65536), dim3(32), 0, &counter, &sum); });
  expect("a grid of y 65536 is refused", fault.find("refused") == 0, fault);
  fault = fault_of([&] { device.launch(count_with_atomics, dim3(1), dim3(32), 48 * 1024 + 1, &counter, &sum); });
  expect("more than 48 KiB of dynamic shared memory is refused", fault.find("shared memory") != std::string::npos,
         fault);
  fault = fault_of([&] { device.launch(count_with_atomics, dim3(1), dim3(32), 48 * 1024, &counter, &sum); });
  expect("48 KiB of dynamic shared memory is accepted", fault.empty(), fault);
  // every launch plan the cases use fits a GPU's limits (the launches above would throw otherwise);
  // and the largest fast_hash the operator accepts at head_dim 320 and 256 hashes fits too
  const yoso::FastHashLaunch big = yoso::fast_hash_launch(65535, 1, 320, 256);
  expect("fast_hash at head_dim 320, 256 hashes, 65535 batch*heads fits",
         big.shared_bytes <= 48 * 1024 && big.threads <= 1024 && big.grid_y <= 65535, "");
  std::printf("%d passed, %d failed\n", tally.passed, tally.failed);
  return tally.failed == 0 ? 0 : 1;
}

int run_plant(const std::string& what) {
  if (what == "overrun") {
    Device device;
    std::vector<float> out(64, 0);
    device.launch(write_past_shared, dim3(1), dim3(64), 63 * sizeof(float), out.data());
    std::printf("the overrun was not reported\n");
    return 0;
  }
  std::fprintf(stderr, "unknown --plant %s\n", what.c_str());
  return 2;
}

// ---------------------------------------------------------------------------------------------
// --io DIR: cases from torch. Each line of DIR/cases.txt is `name op sizes...`; arrays are raw
// little-endian files DIR/name.array.bin (int32 codes, float32 rows unless stated).

template <typename T>
std::vector<T> read_array(const std::string& path, int64_t count) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error("cannot read " + path);
  std::vector<T> data(count);
  file.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(count * sizeof(T)));
  if (file.gcount() != static_cast<std::streamsize>(count * sizeof(T)) || file.peek() != EOF) {
    throw std::runtime_error(path + " does not hold " + std::to_string(count) + " elements");
  }
  return data;
}

template <typename T>
void write_array(const std::string& path, const std::vector<T>& data) {
  std::ofstream file(path, std::ios::binary);
  file.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(T)));
  if (!file) throw std::runtime_error("cannot write " + path);
}

int run_io(const std::string& dir, Order order) {
  std::ifstream list(dir + "/cases.txt");
  if (!list) {
    std::fprintf(stderr, "cannot read %s/cases.txt\n", dir.c_str());
    return 2;
  }
  Device device(order, kSeed);
  std::string line;
  int cases = 0;
  while (std::getline(list, line)) {
    std::istringstream fields(line);
    std::string name, op;
    if (!(fields >> name >> op)) continue;
    const std::string at = dir + "/" + name + ".";
    auto f32 = [&](const char* array, int64_t count) { return read_array<float>(at + array + ".bin", count); };
    auto i32 = [&](const char* array, int64_t count) { return read_array<int32_t>(at + array + ".bin", count); };
    if (op == "fast_hash") {
      FastHashCase c;
      int64_t stored;
      fields >> c.bh >> c.n >> c.d >> c.m >> c.tau >> stored >> c.dtype;
      const std::vector<float> diag = f32("diagonals", c.bh * stored * 3 * yoso::padded_dim(c.d));
      std::vector<int32_t> out;
      if (c.dtype == 0) {
        out = fast_hash_cuda(device, f32("x", c.bh * c.n * c.d), diag, c, stored);
      } else if (c.dtype == 1) {
        out = fast_hash_cuda(device, read_array<BFloat16>(at + "x.bin", c.bh * c.n * c.d), diag, c, stored);
      } else {
        out = fast_hash_cuda(device, read_array<Half>(at + "x.bin", c.bh * c.n * c.d), diag, c, stored);
      }
      write_array(at + "codes.bin", out);
    } else {
      CumulationCase c{};
      fields >> c.bh >> c.n_q >> c.n_k >> c.d >> c.dv >> c.m >> c.tau >> c.w;
      Inputs in;
      in.qc = i32("query_codes", c.bh * c.n_q * c.m);
      in.kc = i32("key_codes", c.bh * c.n_k * c.m);
      in.qm = f32("query_mask", c.bh * c.n_q);
      in.km = f32("key_mask", c.bh * c.n_k);
      in.v = f32("value", c.bh * c.n_k * c.dv);
      if (op == "lsh_cumulation") {
        write_array(at + "out.bin", lsh_cumulation_cuda(device, in, c));
      } else if (op == "lsh_weighted_cumulation") {
        in.qw = f32("query_weight", c.bh * c.n_q * c.w);
        in.kw = f32("key_weight", c.bh * c.n_k * c.w);
        write_array(at + "out.bin", lsh_weighted_cumulation_cuda(device, in, c));
      } else if (op == "lsh_backward") {
        in.q = f32("query", c.bh * c.n_q * c.d);
        in.k = f32("key", c.bh * c.n_k * c.d);
        in.g = f32("grad", c.bh * c.n_q * c.dv);
        const Gradients out = lsh_backward_cuda(device, in, c);
        write_array(at + "grad_query.bin", out.gq);
        write_array(at + "grad_key.bin", out.gk);
        write_array(at + "grad_value.bin", out.gv);
      } else {
        std::fprintf(stderr, "%s: unknown operator %s\n", name.c_str(), op.c_str());
        return 2;
      }
    }
    std::printf("ran  %s %s\n", name.c_str(), op.c_str());
    ++cases;
  }
  std::printf("%d cases run\n", cases);
  return cases > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string only, plant, io;
  std::vector<Order> orders = {Order::forward, Order::reverse, Order::random};
  bool emulator = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--only" && a + 1 < argc) {
      only = argv[++a];
    } else if (arg == "--order" && a + 1 < argc) {
      const std::string name = argv[++a];
      orders.clear();
      for (Order o : {Order::forward, Order::reverse, Order::random}) {
        if (name == cuda_cpu::order_name(o)) orders.push_back(o);
      }
      if (orders.empty()) {
        std::fprintf(stderr, "--order must be forward, reverse or random, got %s\n", name.c_str());
        return 2;
      }
    } else if (arg == "--emulator") {
      emulator = true;
    } else if (arg == "--io" && a + 1 < argc) {
      io = argv[++a];
    } else if (arg == "--plant" && a + 1 < argc) {
      plant = argv[++a];
    } else {
      std::fprintf(stderr, "usage: %s [--only OP] [--order ORDER] [--emulator] [--plant overrun] [--io DIR]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!plant.empty()) return run_plant(plant);
  if (!io.empty()) {
    try {
      return run_io(io, orders.size() == 1 ? orders[0] : Order::random);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  if (emulator) return run_emulator_checks();
  if (!only.empty() && only != "fast_hash" && only != "lsh_cumulation" && only != "lsh_weighted_cumulation" &&
      only != "lsh_backward") {
    std::fprintf(stderr, "--only must name an operator, got %s\n", only.c_str());
    return 2;
  }
  return run_kernels(only, orders);
}
