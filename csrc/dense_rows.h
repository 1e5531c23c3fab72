// The vectorised inner loops every kernel shares: a row of the output accumulated from scaled
// rows of a dense operand, a scaled row scattered into an accumulator, and a dot product.
//
// The row accumulation uses GCC/Clang vector types (32 bytes: one ymm register under AVX2, two
// xmm registers on the baseline ISA) so that its partial sums provably live in registers; the
// others are plain loops the compiler vectorises at -O3 without -ffast-math (independent
// accumulators, no reassociation needed). CallBestIsa compiles a call site
// twice on x86-64, for the baseline ISA and for AVX2+FMA, and picks one at run time (the wheel
// must run on any x86-64 CPU, so the build never uses -march=native).

#ifndef JSPARSE_CSRC_DENSE_ROWS_H_
#define JSPARSE_CSRC_DENSE_ROWS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.h"

namespace jsparse {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define JSPARSE_X86_DISPATCH 1
inline bool HasAvx2Fma() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
// flatten inlines everything f() calls, so the whole loop nest is compiled for AVX2+FMA.
template <typename F>
__attribute__((flatten, target("avx2,fma"))) void CallAvx2(const F& f) {
  f();
}
#endif

template <typename F>
__attribute__((flatten)) void CallBaseline(const F& f) {
  f();
}

// Runs f() compiled for the widest vector ISA this CPU offers.
template <typename F>
void CallBestIsa(const F& f) {
#ifdef JSPARSE_X86_DISPATCH
  if (HasAvx2Fma()) {
    CallAvx2(f);
    return;
  }
#endif
  CallBaseline(f);
}

// Terms ahead whose dense rows are prefetched (BSR, N:M; CSR, whose rows of B are in L2, no longer
// prefetches: csr_kernels.h): random rows of B miss the caches, and the loads of the next few
// terms overlap with the arithmetic of this one. Only the first two cache lines of
// a row: prefetching whole rows (up to 2 KiB) measured slower at N = 128 once K tiles keep B in
// L2 (more prefetch instructions than misses they hide), and no better at N = 32.
constexpr int64_t kPrefetchDistance = 8;
constexpr int64_t kPrefetchBytes = 128;

// Asks for the first min(bytes, kPrefetchBytes) bytes at `address` to be brought into the caches.
inline void PrefetchRow(const void* address, int64_t bytes) {
  const char* start = static_cast<const char*>(address);
  const int64_t limit = std::min(bytes, kPrefetchBytes);
  for (int64_t offset = 0; offset < limit; offset += 64) __builtin_prefetch(start + offset);
}

// A 32-byte vector of T (a ymm register under AVX2, two xmm registers on the baseline ISA).
template <typename T>
struct Vector32 {
  typedef T type __attribute__((vector_size(32)));
  static constexpr int64_t kLanes = 32 / sizeof(T);
};

// Loads kLanes consecutive values (any alignment) as a vector of Value::Accum.
template <typename Value>
struct LaneLoader {
  using Accum = typename Value::Accum;
  using Vec = typename Vector32<Accum>::type;
  static void Load(const typename Value::Storage* from, Vec* to) {
    static_assert(sizeof(typename Value::Storage) == sizeof(Accum), "storage is the accumulator");
    std::memcpy(to, from, sizeof(Vec));
  }
};

// bfloat16 (16 raw bits) widens to float32 as the high half of each 32-bit lane: interleaving
// zeros below the bits (3 instructions under AVX2; GCC 12 turns a __builtin_convertvector plus
// shift into 5).
template <>
struct LaneLoader<BFloat16Value> {
  using Vec = Vector32<float>::type;
  static void Load(const uint16_t* from, Vec* to) {
    typedef uint16_t Narrow __attribute__((vector_size(16)));
    typedef uint16_t Halves __attribute__((vector_size(32)));
    Narrow bits;
    std::memcpy(&bits, from, sizeof(bits));
    const Narrow zero = {};
    const Halves wide = __builtin_shufflevector(zero, bits, 0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5,
                                                13, 6, 14, 7, 15);
    std::memcpy(to, &wide, sizeof(*to));
  }
};

// Vectors of output columns held in registers while every term of a row is added: 8 of the 16
// ymm registers, the rest for the broadcast factor and the loads. Wider panels spill.
constexpr int64_t kPanelVectors = 8;

// Where a row's sums go: written to Value::Storage (Target = Storage, starting from 0) or added
// to partial sums in Value::Accum (Target = Accum, kAddInto), for products split over K.
template <typename Value, bool kAddInto>
using RowTarget = std::conditional_t<kAddInto, typename Value::Accum, typename Value::Storage>;

// target[start : start + kVectors * lanes] (=|+=) sum over terms of a * rhs_row[same columns],
// the sums in registers for the whole pass over the terms.
template <typename Value, bool kAddInto, int kVectors, typename ForEachTerm>
inline void AccumulatePanel(int64_t start, const ForEachTerm& for_each_term,
                            RowTarget<Value, kAddInto>* target) {
  using Accum = typename Value::Accum;
  using Vec = typename Vector32<Accum>::type;
  constexpr int64_t lanes = Vector32<Accum>::kLanes;
  Vec acc[kVectors];
#pragma GCC unroll 16
  for (int v = 0; v < kVectors; ++v) {
    if constexpr (kAddInto) {
      std::memcpy(&acc[v], target + start + v * lanes, sizeof(Vec));
    } else {
      acc[v] = Vec{};
    }
  }
  for_each_term([&](Accum a, const typename Value::Storage* rhs_row) {
    const auto* rhs = rhs_row + start;
    // Kept as one base register: else GCC folds `start + v * lanes` into a register per vector,
    // runs out of registers and spills a partial sum.
    asm("" : "+r"(rhs));
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      Vec b;
      LaneLoader<Value>::Load(rhs + v * lanes, &b);
      acc[v] += a * b;
    }
  });
  if constexpr (kAddInto) {
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) {
      std::memcpy(target + start + v * lanes, &acc[v], sizeof(Vec));
    }
  } else if constexpr (std::is_same_v<typename Value::Storage, Accum>) {
    // Straight from the registers: through a buffer on the stack, GCC reloaded each 32-byte
    // vector as two 16-byte halves, the upper one stalling on store-to-load forwarding (7% of a
    // 2048 x 512 s = 0.98 N = 32 product, perf).
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) std::memcpy(target + start + v * lanes, &acc[v], sizeof(Vec));
  } else {
    alignas(32) Accum sums[kVectors * lanes];
#pragma GCC unroll 16
    for (int v = 0; v < kVectors; ++v) std::memcpy(sums + v * lanes, &acc[v], sizeof(Vec));
    for (int64_t j = 0; j < kVectors * lanes; ++j) target[start + j] = Value::Store(sums[j]);
  }
}

// AccumulatePanel for a run-time number of vectors in [1, kPanelVectors].
template <typename Value, bool kAddInto, typename ForEachTerm>
inline void AccumulatePanelOf(int64_t vectors, int64_t start, const ForEachTerm& for_each_term,
                              RowTarget<Value, kAddInto>* target) {
  static_assert(kPanelVectors == 8, "one case per panel width");
  switch (vectors) {
    case 1: return AccumulatePanel<Value, kAddInto, 1>(start, for_each_term, target);
    case 2: return AccumulatePanel<Value, kAddInto, 2>(start, for_each_term, target);
    case 3: return AccumulatePanel<Value, kAddInto, 3>(start, for_each_term, target);
    case 4: return AccumulatePanel<Value, kAddInto, 4>(start, for_each_term, target);
    case 5: return AccumulatePanel<Value, kAddInto, 5>(start, for_each_term, target);
    case 6: return AccumulatePanel<Value, kAddInto, 6>(start, for_each_term, target);
    case 7: return AccumulatePanel<Value, kAddInto, 7>(start, for_each_term, target);
    default: return AccumulatePanel<Value, kAddInto, 8>(start, for_each_term, target);
  }
}

// Columns go in panels of at most kPanelVectors vectors, split evenly (N = 128 float32: two of
// 64), each accumulated in registers over all terms: one load and one FMA per vector and term,
// where an accumulator in memory costs two loads, an FMA and a store. The < lanes columns left
// over accumulate in scalars.
template <typename Value, bool kAddInto, typename ForEachTerm>
inline void AccumulateRowInto(int64_t width, const ForEachTerm& for_each_term,
                              RowTarget<Value, kAddInto>* target) {
  using Accum = typename Value::Accum;
  using Storage = typename Value::Storage;
  constexpr int64_t lanes = Vector32<Accum>::kLanes;
  const int64_t vectors = width / lanes;
  // One or two panels (N <= 128 float32) are split without a run-time division: this runs once
  // per row, and two 64-bit divisions per row took most of the time of rows with few terms
  // (an all-empty 2048 x 512 N = 32 product, one thread: 18 us, most of it waiting on them).
  if (vectors > 0 && vectors <= kPanelVectors) {
    AccumulatePanelOf<Value, kAddInto>(vectors, 0, for_each_term, target);
  } else if (vectors > kPanelVectors && vectors <= 2 * kPanelVectors) {
    const int64_t half = vectors / 2;
    AccumulatePanelOf<Value, kAddInto>(half, 0, for_each_term, target);
    AccumulatePanelOf<Value, kAddInto>(vectors - half, half * lanes, for_each_term, target);
  } else if (vectors > 0) {
    const int64_t panels = (vectors + kPanelVectors - 1) / kPanelVectors;
    for (int64_t panel = 0; panel < panels; ++panel) {
      const int64_t first = vectors * panel / panels, last = vectors * (panel + 1) / panels;
      AccumulatePanelOf<Value, kAddInto>(last - first, first * lanes, for_each_term, target);
    }
  }
  const int64_t tail = vectors * lanes;
  if (tail == width) return;
  if (width == 1) {
    // SpMV: one sum in a register (the tail loop below keeps its sums in memory: 2.5x slower
    // here). Two sums over alternate terms measured slower still (4096 x 4096, 70-98% sparse).
    Accum sum = 0;
    if constexpr (kAddInto) sum = target[0];
    for_each_term([&](Accum a, const Storage* rhs_row) { sum += a * Value::Load(rhs_row[0]); });
    if constexpr (kAddInto) {
      target[0] = sum;
    } else {
      target[0] = Value::Store(sum);
    }
    return;
  }
  Accum acc[lanes] = {};
  const int64_t tail_width = width - tail;
  if constexpr (kAddInto) {
    for (int64_t j = 0; j < tail_width; ++j) acc[j] = target[tail + j];
  }
  for_each_term([&](Accum a, const Storage* rhs_row) {
    for (int64_t j = 0; j < tail_width; ++j) acc[j] += a * Value::Load(rhs_row[tail + j]);
  });
  for (int64_t j = 0; j < tail_width; ++j) {
    if constexpr (kAddInto) {
      target[tail + j] = acc[j];
    } else {
      target[tail + j] = Value::Store(acc[j]);
    }
  }
}

// out[0:width] = sum over terms of a * rhs_row[0:width], for width = N columns.
// `for_each_term(fn)` calls fn(a, rhs_row) for every term, with a of type Value::Accum and
// rhs_row a pointer to N Value::Storage; it is called once per panel of columns.
template <typename Value, typename ForEachTerm>
inline void AccumulateRow(int64_t width, const ForEachTerm& for_each_term,
                          typename Value::Storage* out) {
  AccumulateRowInto<Value, false>(width, for_each_term, out);
}

// sums[0:width] += sum over terms of a * rhs_row[0:width], sums in Value::Accum; for_each_term
// as for AccumulateRow.
template <typename Value, typename ForEachTerm>
inline void AddToRow(int64_t width, const ForEachTerm& for_each_term,
                     typename Value::Accum* sums) {
  AccumulateRowInto<Value, true>(width, for_each_term, sums);
}

// acc[0:width] += a * rhs[0:width].
template <typename Value>
inline void ScaledAdd(int64_t width, typename Value::Accum a, const typename Value::Storage* rhs,
                      typename Value::Accum* acc) {
  for (int64_t j = 0; j < width; ++j) acc[j] += a * Value::Load(rhs[j]);
}

// sum(x[0:depth] * y[0:depth]) in Value::Accum, with 8 independent partial sums.
template <typename Value>
inline typename Value::Accum Dot(int64_t depth, const typename Value::Storage* x,
                                 const typename Value::Storage* y) {
  using Accum = typename Value::Accum;
  constexpr int64_t lanes = 8;
  Accum partial[lanes] = {};
  int64_t k = 0;
  for (; k + lanes <= depth; k += lanes) {
    for (int64_t j = 0; j < lanes; ++j) partial[j] += Value::Load(x[k + j]) * Value::Load(y[k + j]);
  }
  for (; k < depth; ++k) partial[0] += Value::Load(x[k]) * Value::Load(y[k]);
  Accum sum = 0;
  for (int64_t j = 0; j < lanes; ++j) sum += partial[j];
  return sum;
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_DENSE_ROWS_H_
