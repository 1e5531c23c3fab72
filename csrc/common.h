// Shared by every kernel family: value types, thread partitioning, structure checks.
//
// Nothing here knows XLA: the loop nests take plain pointers and an Executor, so a C++ test, a
// fuzzer or a sanitizer build can call them directly. csrc/ffi_support.h adapts XLA's FFI thread
// pool to an Executor.

#ifndef JSPARSE_CSRC_COMMON_H_
#define JSPARSE_CSRC_COMMON_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

namespace jsparse {

// How a value type is stored and accumulated. float and double accumulate in themselves, as
// XLA's own dot does.
template <typename T>
struct NativeValue {
  using Storage = T;
  using Accum = T;
  static Accum Load(Storage value) { return value; }
  static Storage Store(Accum value) { return value; }
};

// bfloat16 held as its 16 raw bits (what XLA FFI hands over for BF16), accumulated in float32.
struct BFloat16Value {
  using Storage = uint16_t;
  using Accum = float;

  static Accum Load(Storage bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof(value));
    return value;
  }

  // Rounds to nearest, ties to even; NaNs stay NaNs (quieted), overflow rounds to infinity.
  static Storage Store(Accum value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      return static_cast<Storage>((bits >> 16) | 0x0040u);
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<Storage>(bits >> 16);
  }
};

// Runs tasks for the kernels. The default runs everything on the calling thread.
class Executor {
 public:
  virtual ~Executor() = default;
  // Threads besides the caller that may run scheduled tasks (0: none).
  virtual int64_t num_workers() const { return 0; }
  // Runs `task` some time later on another thread (or now, on this one).
  virtual void Schedule(std::function<void()> task) const { task(); }
  // Fewest multiply-adds worth handing to other threads (kMinParallelWork, below).
  virtual int64_t min_parallel_work() const;
};

// Below this many multiply-adds a chunk is not worth a task of its own.
constexpr int64_t kMinWorkPerChunk = 1 << 15;
// Below this many multiply-adds a whole call runs on the calling thread: waking a pool thread
// (and waiting for the chunk it claimed) costs more than it saves. Measured on the 2-core EPYC
// at load ~0.3 (jitted CSR SpMM in the suite's compiled loop, uniform random, N = 32 unless
// given, one thread and two interleaved in one process, median of 7 x ~16 ms, us): 84K
// multiply-adds (512 x 512 s = 0.99) 11.7 -> 11.6-13.2 (even); 168K (s = 0.98) 17.8-20.2 ->
// 16.4-17.6; 419K (s = 0.95) 35.8-41.6 -> 26.3-29.7; 671K (2048 x 512 s = 0.98) 69-74 ->
// 47-51, (512 x 512 s = 0.98 N = 128) 52-73 -> 38-69; 839K (512 x 512 s = 0.9) 76 -> 59. An
// earlier measurement under a load of 2.5 (another process on a core) had favoured one thread up
// to 0.84M: on a busy machine the second thread is not there to take its chunks.
constexpr int64_t kMinParallelWork = 1 << 17;

inline int64_t Executor::min_parallel_work() const { return kMinParallelWork; }
// Chunks per thread: many, so that rows of unequal cost even out and a thread the OS preempts
// (a shared machine) holds back only a small share of the work.
constexpr int64_t kChunksPerThread = 16;

// Number of chunks to split `work` multiply-adds into on `executor`, at least 1 (exactly 1, the
// calling thread alone, below executor.min_parallel_work()).
inline int64_t NumChunks(const Executor& executor, int64_t work) {
  if (work < executor.min_parallel_work()) return 1;
  const int64_t threads = executor.num_workers() + 1;
  const int64_t by_work = work / kMinWorkPerChunk;
  return std::max<int64_t>(1, std::min(threads * kChunksPerThread, by_work));
}

// Calls body(chunk) for every chunk in [0, num_chunks), in parallel on the executor's workers
// and the calling thread, and returns when all calls have returned. Chunks are claimed from a
// shared counter, so the caller never waits for a task that has not started: a pool whose
// threads are all busy (or a handler that itself runs on a pool thread) cannot deadlock it.
inline void ParallelFor(const Executor& executor, int64_t num_chunks,
                        const std::function<void(int64_t)>& body) {
  const int64_t helpers = std::min(executor.num_workers(), num_chunks - 1);
  if (helpers <= 0) {
    for (int64_t chunk = 0; chunk < num_chunks; ++chunk) body(chunk);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0};
    std::mutex mutex;
    std::condition_variable done;
    int64_t finished = 0;
  };
  // Shared with the tasks: a task that starts after the caller returned finds no chunk left.
  auto state = std::make_shared<State>();
  auto run = [state, num_chunks, &body]() {
    int64_t ran = 0;
    for (int64_t chunk = state->next++; chunk < num_chunks; chunk = state->next++) {
      body(chunk);
      ++ran;
    }
    if (ran > 0) {
      std::lock_guard<std::mutex> lock(state->mutex);
      state->finished += ran;
      if (state->finished == num_chunks) state->done.notify_all();
    }
  };
  // `body` is only touched while a chunk is claimed, and the caller waits for all claimed chunks.
  for (int64_t i = 0; i < helpers; ++i) executor.Schedule(run);
  run();
  std::unique_lock<std::mutex> lock(state->mutex);
  state->done.wait(lock, [&] { return state->finished == num_chunks; });
}

// Splits rows [0, rows) into `num_chunks` contiguous ranges of about equal cost, where row r
// costs (row_offsets[r + 1] - row_offsets[r]) * work_per_entry + 1 (the 1 keeps long runs of
// empty rows from piling onto one chunk). Returns num_chunks + 1 boundaries. row_offsets must be
// valid (CheckRowOffsets).
template <typename Index>
std::vector<int64_t> SplitRowsByCost(const Index* row_offsets, int64_t rows, int64_t num_chunks,
                                     int64_t work_per_entry) {
  auto cost_before = [&](int64_t row) {
    return static_cast<int64_t>(row_offsets[row]) * work_per_entry + row;
  };
  const int64_t total = cost_before(rows);
  std::vector<int64_t> bounds(num_chunks + 1, rows);
  bounds[0] = 0;
  int64_t row = 0;
  for (int64_t chunk = 1; chunk < num_chunks; ++chunk) {
    const int64_t target = total / num_chunks * chunk + total % num_chunks * chunk / num_chunks;
    // First row whose start cost reaches target; cost_before is increasing.
    int64_t lo = row, hi = rows;
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (cost_before(mid) < target) lo = mid + 1; else hi = mid;
    }
    row = lo;
    bounds[chunk] = row;
  }
  return bounds;
}

// Checks that row_offsets [rows + 1] describe rows inside [0, nse): row_offsets[0] == 0,
// non-decreasing, row_offsets[rows] <= nse. Returns "" when they do, else a message naming the
// first offending position.
template <typename Index>
std::string CheckRowOffsets(const Index* row_offsets, int64_t rows, int64_t nse) {
  if (row_offsets[0] != 0) {
    return "row_offsets[0] must be 0, got " + std::to_string(row_offsets[0]);
  }
  // One branch-free pass (it vectorises), then the search for the first descent only if any:
  // this runs on the calling thread before the rows are split (2048 rows: ~7% of an all-empty
  // 2048 x 512 N = 32 product with the branching loop).
  // The flag is as wide as the offsets: GCC vectorises no bool flag.
  using Flag = std::make_unsigned_t<Index>;
  Flag descends = 0;
  for (int64_t row = 1; row <= rows; ++row) {
    descends |= static_cast<Flag>(row_offsets[row] < row_offsets[row - 1]);
  }
  for (int64_t row = 1; descends && row <= rows; ++row) {
    if (row_offsets[row] < row_offsets[row - 1]) {
      return "row_offsets must be non-decreasing, but row_offsets[" + std::to_string(row) +
             "] = " + std::to_string(row_offsets[row]) + " < row_offsets[" +
             std::to_string(row - 1) + "] = " + std::to_string(row_offsets[row - 1]);
    }
  }
  if (row_offsets[rows] > nse) {
    return "row_offsets[" + std::to_string(rows) + "] = " + std::to_string(row_offsets[rows]) +
           " exceeds nse = " + std::to_string(nse) + " (the length of col_indices)";
  }
  return "";
}

// Position of the first index in indices[0, count) outside [0, bound), or -1.
template <typename Index>
int64_t FirstOutOfRange(const Index* indices, int64_t count, int64_t bound) {
  for (int64_t pos = 0; pos < count; ++pos) {
    const int64_t index = static_cast<int64_t>(indices[pos]);
    if (index < 0 || index >= bound) return pos;
  }
  return -1;
}

// What one pass over indices finds: the first index outside [0, bound) (-1: none) and the number
// of descents (positions whose index is below the one before). Branch-free, so it vectorises;
// the bad position is searched for only when there is one.
struct IndexScan {
  int64_t first_bad = -1;
  int64_t descents = 0;
};

template <typename Index>
IndexScan ScanIndices(const Index* indices, int64_t count, int64_t bound) {
  // For signed Index one unsigned compare catches both index < 0 and index >= bound; the bound
  // is clamped to what an Index can hold, so the compare stays as narrow as the indices.
  using Unsigned = std::conditional_t<std::is_signed_v<Index>, std::make_unsigned_t<Index>,
                                      uint64_t>;
  const int64_t widest = static_cast<int64_t>(std::numeric_limits<Index>::max());
  const int64_t highest = !std::is_signed_v<Index> ? std::max<int64_t>(bound, 0)
                          : widest < std::numeric_limits<int64_t>::max() ? widest + 1 : widest;
  const Unsigned limit = static_cast<Unsigned>(std::clamp<int64_t>(bound, 0, highest));
  // No branch in the loop and flags as wide as the indices: GCC vectorises neither an
  // `if (pos > 0)` inside the loop nor bool flags, and the scalar scan took a third of a 2048 x
  // 512, 70%-sparse N = 32 SpMM (0.93 ms; 0.64 ms with no scan at all). The count of descents
  // cannot overflow: count <= the largest Index.
  Unsigned any_bad = count > 0 && static_cast<Unsigned>(indices[0]) >= limit;
  Unsigned descents = 0;
  for (int64_t pos = 1; pos < count; ++pos) {
    any_bad |= static_cast<Unsigned>(static_cast<Unsigned>(indices[pos]) >= limit);
    descents += static_cast<Unsigned>(indices[pos] < indices[pos - 1]);
  }
  IndexScan scan;
  scan.descents = static_cast<int64_t>(descents);
  if (any_bad) scan.first_bad = FirstOutOfRange(indices, count, bound);
  return scan;
}

inline std::string OutOfRangeMessage(const char* name, int64_t pos, int64_t value,
                                     int64_t bound, const char* what) {
  return std::string(name) + "[" + std::to_string(pos) + "] = " + std::to_string(value) +
         " is out of range [0, " + std::to_string(bound) + ") (" + what + ")";
}

// Records the smallest failing position reported by any chunk.
class FirstFailure {
 public:
  void Report(int64_t pos) {
    int64_t seen = first_.load();
    while ((seen < 0 || pos < seen) && !first_.compare_exchange_weak(seen, pos)) {
    }
  }
  int64_t position() const { return first_.load(); }

 private:
  std::atomic<int64_t> first_{-1};
};

}  // namespace jsparse

#endif  // JSPARSE_CSRC_COMMON_H_
