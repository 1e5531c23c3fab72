// The vectorised inner loops every kernel shares: a row of the output accumulated from scaled
// rows of a dense operand, a scaled row scattered into an accumulator, and a dot product.
//
// They are written so that the compiler vectorises them at -O3 without -ffast-math: fixed-width
// tiles of independent accumulators (no reassociation needed). CallBestIsa compiles a call site
// twice on x86-64, for the baseline ISA and for AVX2+FMA, and picks one at run time (the wheel
// must run on any x86-64 CPU, so the build never uses -march=native).

#ifndef JSPARSE_CSRC_DENSE_ROWS_H_
#define JSPARSE_CSRC_DENSE_ROWS_H_

#include <algorithm>
#include <cstdint>

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

// Columns of an output row accumulated at a time, in a buffer that stays in L1 (4 KiB of
// float32). Every term then reads whole rows of the dense operand, front to back, which the
// hardware prefetchers follow; a register tile narrower than the row would read each row in
// several separate passes and lose to them (measured slower at N = 128 on AMD EPYC).
constexpr int64_t kRowBlock = 1024;
// Terms ahead whose dense rows are prefetched: random rows of B miss the caches, and the loads of
// the next few terms overlap with the arithmetic of this one.
constexpr int64_t kPrefetchDistance = 8;
constexpr int64_t kPrefetchBytes = 2048;

// Asks for the first min(bytes, kPrefetchBytes) bytes at `address` to be brought into the caches.
inline void PrefetchRow(const void* address, int64_t bytes) {
  const char* start = static_cast<const char*>(address);
  const int64_t limit = std::min(bytes, kPrefetchBytes);
  for (int64_t offset = 0; offset < limit; offset += 64) __builtin_prefetch(start + offset);
}

// out[0:width] = sum over terms of a * rhs_row[0:width], for width = N columns.
// `for_each_term(fn)` calls fn(a, rhs_row) for every term, with a of type Value::Accum and
// rhs_row a pointer to N Value::Storage; it is called once per block of kRowBlock columns.
template <typename Value, typename ForEachTerm>
inline void AccumulateRow(int64_t width, const ForEachTerm& for_each_term,
                          typename Value::Storage* out) {
  using Accum = typename Value::Accum;
  using Storage = typename Value::Storage;
  if (width == 1) {  // SpMV: one scalar sum.
    Accum sum = 0;
    for_each_term([&](Accum a, const Storage* rhs_row) { sum += a * Value::Load(rhs_row[0]); });
    out[0] = Value::Store(sum);
    return;
  }
  for (int64_t start = 0; start < width; start += kRowBlock) {
    const int64_t block = std::min(kRowBlock, width - start);
    alignas(64) Accum acc[kRowBlock];
    for (int64_t j = 0; j < block; ++j) acc[j] = 0;
    for_each_term([&](Accum a, const Storage* rhs_row) {
      const Storage* rhs = rhs_row + start;
      for (int64_t j = 0; j < block; ++j) acc[j] += a * Value::Load(rhs[j]);
    });
    for (int64_t j = 0; j < block; ++j) out[start + j] = Value::Store(acc[j]);
  }
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
