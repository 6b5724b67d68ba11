// The head widths the CPU kernels compile a fixed-size inner loop for.
#pragma once

#include <cstdint>

// Runs the statement(s) after WIDTH with the constant WIDTH (an int64_t) set to `width` when it is
// 32, 64 or 128, and to 0 (the loop bounds read at run time) for any other width:
//   YOSO_DISPATCH_WIDTH(d, D, run<D>(args));
#define YOSO_DISPATCH_WIDTH(width, WIDTH, ...) \
  switch (width) {                             \
    case 32: {                                 \
      constexpr int64_t WIDTH = 32;            \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    case 64: {                                 \
      constexpr int64_t WIDTH = 64;            \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    case 128: {                                \
      constexpr int64_t WIDTH = 128;           \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
    default: {                                 \
      constexpr int64_t WIDTH = 0;             \
      __VA_ARGS__;                             \
      break;                                   \
    }                                          \
  }
