// A CUDA execution model on the CPU, for running yoso's device code (yoso_core/csrc/cuda/*.cuh)
// under g++ (and AddressSanitizer/UBSan) where no GPU exists. Include it before the kernels'
// headers.
//
// Every CUDA thread of a block is a fiber (its own stack; on x86-64 a six-register stack switch,
// elsewhere a ucontext) on the one OS thread. The scheduler resumes each runnable thread of the
// block in turn (order forward, reverse or random, reseeded per launch) and lets it run until it
// blocks: at __syncthreads, at a warp operation (__shfl_*_sync, __syncwarp), or by returning.
// When every thread is blocked it first completes the warp operations whose mask is fully present
// (only those lanes, so warps that shuffle different numbers of times are fine), then, when
// nothing else can move, releases the barrier if every live thread of the block waits at it.
// Anything else is a fault, thrown as cuda_cpu::KernelFault from launch():
//   - a deadlock: threads at __syncthreads while others have exited or wait at a warp operation;
//   - a warp operation whose mask names an exited lane, a lane at a barrier, a lane at a different
//     warp operation, or not the caller itself; a shuffle reading a lane outside the mask.
// Shared memory (dynamic, and YOSO_STATIC_SHARED arrays) is allocated per block at exactly the
// requested size (so AddressSanitizer reports any overrun) and filled with 0xff bytes (NaN as
// float, -1 as int), so a read of memory no thread wrote shows in the results. Launches a GPU
// refuses (more than 1024 threads a block, block or grid dimensions out of range, more shared
// memory than the 48 KiB a kernel gets without opting in) throw cuda_cpu::LaunchRefused.
//
// What it cannot show: data races between threads that run between the same two barriers (each
// thread runs alone until it blocks, so an unsynchronised read sees either all or none of another
// thread's writes of that interval), memory ordering, atomics under contention, anything about
// code generation or speed. Blocks run one after another, in the same order as the threads.
#pragma once

#include <sys/mman.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_CPU_ASAN 1
#endif

// Device-code keywords: plain C++ here.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cuda_cpu {

// The order in which the runnable threads of a block (and the blocks of a grid) are resumed.
enum class Order { forward, reverse, random };

inline const char* order_name(Order order) {
  return order == Order::forward ? "forward" : (order == Order::reverse ? "reverse" : "random");
}

// What a kernel did that a GPU would hang on or leave undefined.
struct KernelFault : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A launch configuration a GPU refuses.
struct LaunchRefused : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The limits of a current NVIDIA GPU (sm_80 / sm_90) for a kernel that does not opt in to more
// shared memory.
struct Limits {
  unsigned max_threads_per_block = 1024;
  unsigned max_block_x = 1024, max_block_y = 1024, max_block_z = 64;
  unsigned max_grid_x = 2147483647u, max_grid_y = 65535, max_grid_z = 65535;
  size_t max_shared_bytes = 48 * 1024;
};

constexpr int kWarpSize = 32;
constexpr unsigned char kJunk = 0xff;

namespace detail {

enum class State { runnable, at_barrier, at_warp_op, exited };
enum class WarpOp { shfl_idx, shfl_xor, shfl_down, shfl_up, syncwarp };

inline const char* warp_op_name(WarpOp op) {
  switch (op) {
    case WarpOp::shfl_idx:
      return "__shfl_sync";
    case WarpOp::shfl_xor:
      return "__shfl_xor_sync";
    case WarpOp::shfl_down:
      return "__shfl_down_sync";
    case WarpOp::shfl_up:
      return "__shfl_up_sync";
    default:
      return "__syncwarp";
  }
}

// One fiber's stack: mmap'd, with an inaccessible guard page below it so an overflow faults.
struct Stack {
  static constexpr size_t kPage = 4096;
#if defined(CUDA_CPU_ASAN)
  static constexpr size_t kSize = 512 * 1024;  // instrumented frames are several times larger
#else
  static constexpr size_t kSize = 128 * 1024;
#endif
  char* base = nullptr;  // guard page, then kSize bytes of stack
  Stack() {
    void* p = mmap(nullptr, kSize + kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cuda_cpu: cannot map a fiber stack");
    base = static_cast<char*>(p);
    mprotect(base, kPage, PROT_NONE);
  }
  ~Stack() { munmap(base, kSize + kPage); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  char* bottom() const { return base + kPage; }
};

// Switching stacks. ucontext's swapcontext also saves the signal mask (a system call), and under
// AddressSanitizer its interceptor clears the shadow of the whole target stack on every switch,
// which made a run minutes long; on x86-64 a fiber switch is therefore the callee-saved
// registers pushed on one stack and popped from the other (AddressSanitizer is told of every
// switch through its fiber annotations either way).
// (-DCUDA_CPU_UCONTEXT takes ucontext on x86-64 too.)
#if defined(__x86_64__) && !defined(CUDA_CPU_UCONTEXT)
#define CUDA_CPU_STACK_SWITCH 1
// switch_stack(&from_sp, to_sp): save this fiber's stack pointer, continue on to_sp. The
// floating-point control words (MXCSR, x87) are not switched: device code does not change them.
__attribute__((naked, noinline)) inline void switch_stack(void** /*from*/, void* /*to*/) {
  asm volatile(
      "pushq %rbp\n\t"
      "pushq %rbx\n\t"
      "pushq %r12\n\t"
      "pushq %r13\n\t"
      "pushq %r14\n\t"
      "pushq %r15\n\t"
      "movq %rsp, (%rdi)\n\t"
      "movq %rsi, %rsp\n\t"
      "popq %r15\n\t"
      "popq %r14\n\t"
      "popq %r13\n\t"
      "popq %r12\n\t"
      "popq %rbx\n\t"
      "popq %rbp\n\t"
      "ret\n\t");
}

constexpr size_t kOutermostFrames = 16 * 1024;

// A fresh stack whose first switch_stack "returns" into entry.
inline void* initial_stack(char* bottom, size_t size, void (*entry)()) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(bottom) + size) & ~uintptr_t(15);
#if defined(CUDA_CPU_ASAN)
  // The outermost frames of the stack's previous fiber (fiber_entry and the switch out of it)
  // never returned, so their redzones are still poisoned: clear them.
  ASAN_UNPOISON_MEMORY_REGION(reinterpret_cast<void*>(top - kOutermostFrames), kOutermostFrames);
#endif
  void** sp = reinterpret_cast<void**>(top);
  *--sp = nullptr;                              // entry's return address: it never returns
  *--sp = reinterpret_cast<void*>(entry);       // popped by switch_stack's ret
  for (int r = 0; r < 6; ++r) *--sp = nullptr;  // rbp rbx r12 r13 r14 r15
  return sp;
}
#endif

struct Thread {
#if defined(CUDA_CPU_STACK_SWITCH)
  void* sp = nullptr;
#else
  ucontext_t context;
#endif
  Stack* stack = nullptr;
  void* fake_stack = nullptr;  // AddressSanitizer's fake stack of this fiber while switched out
  uint3 index{0, 0, 0};
  int linear = 0;  // x + y * blockDim.x + z * blockDim.x * blockDim.y
  State state = State::runnable;
  // the pending warp operation
  WarpOp op = WarpOp::syncwarp;
  unsigned mask = 0;
  int arg = 0;  // source lane, lane mask or delta
  int width = 32;
  uint64_t value = 0, result = 0;
};

// Everything one launch shares. Only one launch runs at a time (one OS thread).
struct Launch {
  dim3 grid, block;
  uint3 block_index{0, 0, 0};
  Limits limits;
  std::vector<Thread> threads;
  Thread* current = nullptr;
#if defined(CUDA_CPU_STACK_SWITCH)
  void* scheduler_sp = nullptr;
#else
  ucontext_t scheduler;
#endif
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack_bottom = nullptr;  // the scheduler's stack, for AddressSanitizer
  size_t scheduler_stack_size = 0;
  std::function<void()> body;  // runs the kernel with its arguments
  // shared memory of the running block
  unsigned char* dynamic_shared = nullptr;
  size_t dynamic_bytes = 0, static_bytes = 0;
  std::map<const void*, unsigned char*> static_shared;  // one array per declaration site
  std::vector<unsigned char*> allocations;
  std::exception_ptr fault;  // thrown by device code (it cannot unwind across fibers)
};

inline Launch*& running() {
  static Launch* launch = nullptr;
  return launch;
}

inline std::vector<std::unique_ptr<Stack>>& stack_pool() {
  static std::vector<std::unique_ptr<Stack>> pool;
  return pool;
}

inline Thread& current_thread() {
  Launch* launch = running();
  if (launch == nullptr || launch->current == nullptr) {
    std::fprintf(stderr, "cuda_cpu: device code called outside a kernel launch\n");
    std::abort();
  }
  return *launch->current;
}

// Leave the running fiber for the scheduler; returns when the scheduler resumes it.
inline void yield_to_scheduler(bool exiting) {
  Launch& launch = *running();
  Thread& self = *launch.current;
#if defined(CUDA_CPU_ASAN)
  __sanitizer_start_switch_fiber(exiting ? nullptr : &self.fake_stack, launch.scheduler_stack_bottom,
                                 launch.scheduler_stack_size);
#else
  (void)exiting;
#endif
#if defined(CUDA_CPU_STACK_SWITCH)
  switch_stack(&self.sp, launch.scheduler_sp);
#else
  swapcontext(&self.context, &launch.scheduler);
#endif
#if defined(CUDA_CPU_ASAN)
  __sanitizer_finish_switch_fiber(self.fake_stack, nullptr, nullptr);
#endif
}

inline void fiber_entry() {
  Launch& launch = *running();
#if defined(CUDA_CPU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &launch.scheduler_stack_bottom, &launch.scheduler_stack_size);
#endif
  try {
    launch.body();
  } catch (...) {
    launch.fault = std::current_exception();
  }
  launch.current->state = State::exited;
  yield_to_scheduler(/*exiting=*/true);
  std::abort();  // an exited fiber is never resumed
}

inline void resume(Launch& launch, Thread& thread) {
  launch.current = &thread;
#if defined(CUDA_CPU_ASAN)
  __sanitizer_start_switch_fiber(&launch.scheduler_fake_stack, thread.stack->bottom(), Stack::kSize);
#endif
#if defined(CUDA_CPU_STACK_SWITCH)
  switch_stack(&launch.scheduler_sp, thread.sp);
#else
  swapcontext(&launch.scheduler, &thread.context);
#endif
#if defined(CUDA_CPU_ASAN)
  __sanitizer_finish_switch_fiber(launch.scheduler_fake_stack, nullptr, nullptr);
#endif
  launch.current = nullptr;
}

inline unsigned char* junk_block(Launch& launch, size_t bytes) {
  // exactly `bytes` (malloc(0) included), so an overrun by one byte is an AddressSanitizer report
  unsigned char* p = static_cast<unsigned char*>(std::malloc(bytes == 0 ? 0 : bytes));
  if (p == nullptr && bytes != 0) throw std::runtime_error("cuda_cpu: out of memory for shared memory");
  if (bytes != 0) std::memset(p, kJunk, bytes);
  launch.allocations.push_back(p);
  return p;
}

inline void free_shared(Launch& launch) {
  for (unsigned char* p : launch.allocations) std::free(p);
  launch.allocations.clear();
  launch.static_shared.clear();
  launch.dynamic_shared = nullptr;
  launch.static_bytes = 0;
}

inline std::string describe(const Launch& launch, const Thread& t) {
  char text[128];
  std::snprintf(text, sizeof(text), "block (%u,%u,%u) thread (%u,%u,%u)", launch.block_index.x, launch.block_index.y,
                launch.block_index.z, t.index.x, t.index.y, t.index.z);
  return text;
}

// Complete every warp operation whose mask is fully present; returns whether any was completed.
// Throws on a mask that can never be satisfied.
inline bool complete_warp_ops(Launch& launch) {
  bool progressed = false;
  const int n = static_cast<int>(launch.threads.size());
  for (int w0 = 0; w0 < n; w0 += kWarpSize) {
    const int lanes = std::min(kWarpSize, n - w0);
    for (int lane = 0; lane < lanes; ++lane) {
      Thread& t = launch.threads[w0 + lane];
      if (t.state != State::at_warp_op) continue;
      const std::string who = describe(launch, t) + " at " + warp_op_name(t.op);
      if (!(t.mask >> lane & 1u)) throw KernelFault(who + ": its mask does not name its own lane");
      for (int other = 0; other < kWarpSize; ++other) {
        if (!(t.mask >> other & 1u)) continue;
        if (other >= lanes) throw KernelFault(who + ": mask names lane " + std::to_string(other) + ", past the block");
        const Thread& o = launch.threads[w0 + other];
        if (o.state == State::exited) {
          throw KernelFault(who + ": mask names lane " + std::to_string(other) + ", which has exited");
        }
        if (o.state == State::at_barrier) {
          throw KernelFault("deadlock: " + who + " waits for lane " + std::to_string(other) +
                            ", which waits at __syncthreads");
        }
        if (o.op != t.op || o.mask != t.mask || o.width != t.width) {
          throw KernelFault(who + ": lane " + std::to_string(other) + " of its mask is at " + warp_op_name(o.op) +
                            " with another mask or width");
        }
      }
      // every lane of the mask is here: exchange
      for (int member = 0; member < lanes; ++member) {
        Thread& r = launch.threads[w0 + member];
        if (!(t.mask >> member & 1u)) continue;
        const int start = member / r.width * r.width, end = start + r.width;
        int source = member;
        switch (r.op) {
          case WarpOp::shfl_idx:
            source = start + ((r.arg % r.width) + r.width) % r.width;
            break;
          case WarpOp::shfl_xor:
            source = member ^ r.arg;
            break;
          case WarpOp::shfl_down:
            source = member + r.arg;
            break;
          case WarpOp::shfl_up:
            source = member - r.arg;
            break;
          case WarpOp::syncwarp:
            break;
        }
        if (source < start || source >= end) source = member;  // outside the segment: own value
        if (!(t.mask >> source & 1u)) {
          throw KernelFault(describe(launch, r) + " at " + warp_op_name(r.op) + " reads lane " +
                            std::to_string(source) + ", which its mask does not name");
        }
        r.result = launch.threads[w0 + source].value;
      }
      for (int member = 0; member < lanes; ++member) {
        if (t.mask >> member & 1u) launch.threads[w0 + member].state = State::runnable;
      }
      progressed = true;
    }
  }
  return progressed;
}

// When no thread can run and no warp operation can complete: release the barrier, or fault.
inline void release_barrier(Launch& launch) {
  int at_barrier = 0, exited = 0, at_warp = 0;
  const Thread* waiting = nullptr;
  for (const Thread& t : launch.threads) {
    if (t.state == State::at_barrier) ++at_barrier;
    if (t.state == State::exited) ++exited;
    if (t.state == State::at_warp_op) {
      ++at_warp;
      waiting = &t;
    }
  }
  if (at_warp > 0) {
    throw KernelFault("deadlock: " + describe(launch, *waiting) + " waits at " + warp_op_name(waiting->op) + ", " +
                      std::to_string(at_barrier) + " threads at __syncthreads");
  }
  if (exited > 0) {
    throw KernelFault("deadlock: " + std::to_string(at_barrier) + " threads of block (" +
                      std::to_string(launch.block_index.x) + "," + std::to_string(launch.block_index.y) + "," +
                      std::to_string(launch.block_index.z) + ") wait at __syncthreads, " + std::to_string(exited) +
                      " have exited");
  }
  for (Thread& t : launch.threads) t.state = State::runnable;
}

inline void run_block(Launch& launch, std::mt19937_64& rng, Order order) {
  const int n = static_cast<int>(launch.threads.size());
  for (int i = 0; i < n; ++i) {
    Thread& t = launch.threads[i];
    t.state = State::runnable;
    t.fake_stack = nullptr;
#if defined(CUDA_CPU_STACK_SWITCH)
    t.sp = initial_stack(t.stack->bottom(), Stack::kSize, fiber_entry);
#else
    getcontext(&t.context);
    t.context.uc_stack.ss_sp = t.stack->bottom();
    t.context.uc_stack.ss_size = Stack::kSize;
    t.context.uc_link = nullptr;
    makecontext(&t.context, fiber_entry, 0);
#endif
  }
  std::vector<int> sequence(n);
  for (int i = 0; i < n; ++i) sequence[i] = order == Order::reverse ? n - 1 - i : i;
  for (;;) {
    if (order == Order::random) std::shuffle(sequence.begin(), sequence.end(), rng);
    bool live = false;
    for (int i : sequence) {
      if (launch.threads[i].state == State::runnable) resume(launch, launch.threads[i]);
      if (launch.fault) std::rethrow_exception(launch.fault);
    }
    for (const Thread& t : launch.threads) live = live || t.state != State::exited;
    if (!live) return;
    if (!complete_warp_ops(launch)) release_barrier(launch);
  }
}

inline void check_launch(const Limits& limits, dim3 grid, dim3 block, size_t shared_bytes) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  auto refuse = [](const std::string& why) { throw LaunchRefused("launch refused: " + why); };
  if (threads == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0) refuse("an empty grid or block");
  if (threads > limits.max_threads_per_block) {
    refuse(std::to_string(threads) + " threads per block, at most " + std::to_string(limits.max_threads_per_block));
  }
  if (block.x > limits.max_block_x || block.y > limits.max_block_y || block.z > limits.max_block_z) {
    refuse("block dimensions out of range");
  }
  if (grid.x > limits.max_grid_x || grid.y > limits.max_grid_y || grid.z > limits.max_grid_z) {
    refuse("grid dimensions out of range");
  }
  if (shared_bytes > limits.max_shared_bytes) {
    refuse(std::to_string(shared_bytes) + " bytes of dynamic shared memory, at most " +
           std::to_string(limits.max_shared_bytes));
  }
}

}  // namespace detail

// The simulated device: its limits, and the order and seed of the thread schedule.
class Device {
 public:
  explicit Device(Order order = Order::forward, uint64_t seed = 0, Limits limits = Limits())
      : order_(order), seed_(seed), limits_(limits) {}

  Order order() const { return order_; }

  // kernel<<<grid, block, shared_bytes>>>(args...), synchronously. Throws LaunchRefused or
  // KernelFault.
  template <typename... Params, typename... Args>
  void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes, Args&&... args) {
    detail::check_launch(limits_, grid, block, shared_bytes);
    // the kernel's parameters, copied once like a launch's parameter buffer
    std::tuple<std::decay_t<Params>...> params(std::forward<Args>(args)...);
    detail::Launch launch;
    launch.grid = grid;
    launch.block = block;
    launch.limits = limits_;
    launch.dynamic_bytes = shared_bytes;
    launch.body = [&] { std::apply(kernel, params); };
    const int n = static_cast<int>(block.x * block.y * block.z);
    auto& pool = detail::stack_pool();
    while (static_cast<int>(pool.size()) < n) pool.push_back(std::make_unique<detail::Stack>());
    launch.threads.resize(n);
    for (int i = 0; i < n; ++i) {
      detail::Thread& t = launch.threads[i];
      t.stack = pool[i].get();
      t.linear = i;
      t.index = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
    }
    std::mt19937_64 rng(seed_ + 0x9e3779b97f4a7c15ull * (++launches_));
    const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
    std::vector<uint64_t> sequence(blocks);
    for (uint64_t k = 0; k < blocks; ++k) sequence[k] = order_ == Order::reverse ? blocks - 1 - k : k;
    if (order_ == Order::random) std::shuffle(sequence.begin(), sequence.end(), rng);
    detail::running() = &launch;
    try {
      for (const uint64_t b : sequence) {
        launch.block_index = uint3{unsigned(b % grid.x), unsigned(b / grid.x % grid.y), unsigned(b / grid.x / grid.y)};
        launch.dynamic_shared = detail::junk_block(launch, shared_bytes);
        detail::run_block(launch, rng, order_);
        detail::free_shared(launch);
      }
    } catch (...) {
      detail::free_shared(launch);
      detail::running() = nullptr;
#if defined(CUDA_CPU_ASAN)
      // the abandoned fibers' frames stay poisoned: clear them before the stacks are reused
      for (int i = 0; i < n; ++i) ASAN_UNPOISON_MEMORY_REGION(pool[i]->bottom(), detail::Stack::kSize);
#endif
      throw;
    }
    detail::running() = nullptr;
  }

 private:
  Order order_;
  uint64_t seed_;
  Limits limits_;
  uint64_t launches_ = 0;
};

// Device-side built-ins.
inline const uint3& thread_index() { return detail::current_thread().index; }
inline const uint3& block_index() { return detail::running()->block_index; }
inline uint3 block_dim() {
  const dim3& d = detail::running()->block;
  return uint3{d.x, d.y, d.z};
}
inline uint3 grid_dim() {
  const dim3& d = detail::running()->grid;
  return uint3{d.x, d.y, d.z};
}

template <typename T>
T* dynamic_shared() {
  return reinterpret_cast<T*>(detail::running()->dynamic_shared);
}

// The shared array declared at `site`: allocated (junk-filled) by the first thread of the block
// that reaches it, the same array for the others.
template <typename T>
T* static_shared(const void* site, size_t count) {
  detail::Launch& launch = *detail::running();
  auto found = launch.static_shared.find(site);
  if (found != launch.static_shared.end()) return reinterpret_cast<T*>(found->second);
  const size_t bytes = count * sizeof(T);
  launch.static_bytes += bytes;
  if (launch.static_bytes + launch.dynamic_bytes > launch.limits.max_shared_bytes) {
    throw LaunchRefused("launch refused: " + std::to_string(launch.static_bytes) + " bytes of static and " +
                        std::to_string(launch.dynamic_bytes) + " of dynamic shared memory, at most " +
                        std::to_string(launch.limits.max_shared_bytes));
  }
  unsigned char* p = detail::junk_block(launch, bytes);
  launch.static_shared[site] = p;
  return reinterpret_cast<T*>(p);
}

inline void syncthreads() {
  detail::current_thread().state = detail::State::at_barrier;
  detail::yield_to_scheduler(false);
}

template <typename T>
T warp_op(detail::WarpOp op, unsigned mask, T value, int arg, int width) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "cuda_cpu: shuffles of at most 8 bytes");
  if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
    throw KernelFault("cuda_cpu: shuffle width " + std::to_string(width) + " is not a power of two up to 32");
  }
  detail::Thread& self = detail::current_thread();
  self.op = op;
  self.mask = mask;
  self.arg = arg;
  self.width = width;
  self.value = 0;
  std::memcpy(&self.value, &value, sizeof(T));
  self.state = detail::State::at_warp_op;
  detail::yield_to_scheduler(false);
  T result;
  std::memcpy(&result, &detail::current_thread().result, sizeof(T));
  return result;
}

}  // namespace cuda_cpu

#define threadIdx (::cuda_cpu::thread_index())
#define blockIdx (::cuda_cpu::block_index())
#define blockDim (::cuda_cpu::block_dim())
#define gridDim (::cuda_cpu::grid_dim())
#define warpSize (::cuda_cpu::kWarpSize)

#define YOSO_DYNAMIC_SHARED(type, name) type* const name = ::cuda_cpu::dynamic_shared<type>()
#define YOSO_STATIC_SHARED(type, name, count) \
  static const char name##_site = 0;          \
  type* const name = ::cuda_cpu::static_shared<type>(&name##_site, (count))

inline void __syncthreads() { cuda_cpu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  cuda_cpu::warp_op<int>(cuda_cpu::detail::WarpOp::syncwarp, mask, 0, 0, cuda_cpu::kWarpSize);
}
inline void __threadfence() {}
inline void __threadfence_block() {}

template <typename T>
T __shfl_sync(unsigned mask, T value, int source_lane, int width = 32) {
  return cuda_cpu::warp_op(cuda_cpu::detail::WarpOp::shfl_idx, mask, value, source_lane, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return cuda_cpu::warp_op(cuda_cpu::detail::WarpOp::shfl_xor, mask, value, lane_mask, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return cuda_cpu::warp_op(cuda_cpu::detail::WarpOp::shfl_down, mask, value, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return cuda_cpu::warp_op(cuda_cpu::detail::WarpOp::shfl_up, mask, value, static_cast<int>(delta), width);
}

// Atomics: one OS thread runs every fiber and a fiber is never interrupted, so a plain
// read-modify-write is atomic here.
namespace cuda_cpu::detail {
template <typename T>
T atomic_add(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
}  // namespace cuda_cpu::detail

// the overloads CUDA has
inline int atomicAdd(int* address, int value) { return cuda_cpu::detail::atomic_add(address, value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return cuda_cpu::detail::atomic_add(address, value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  return cuda_cpu::detail::atomic_add(address, value);
}
inline float atomicAdd(float* address, float value) { return cuda_cpu::detail::atomic_add(address, value); }
inline double atomicAdd(double* address, double value) { return cuda_cpu::detail::atomic_add(address, value); }
