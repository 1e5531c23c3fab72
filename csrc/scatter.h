// The transposed products (A.T @ B for CSR, BSR, N:M; COO in both directions) scatter into
// output rows in an order no partition of A's entries makes private to one thread. They split
// the N output columns across threads instead: every chunk owns a band of columns of every
// output row, and accumulates it (in Value::Accum) without sharing.

#ifndef JSPARSE_CSRC_SCATTER_H_
#define JSPARSE_CSRC_SCATTER_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "common.h"
#include "dense_rows.h"

namespace jsparse {

// Columns per band are a multiple of this, so every band's rows are whole vectors.
constexpr int64_t kBandAlign = 16;

// out[out_rows, num_cols] = sum over entries of a * rhs[in_row, :] added to out[out_row, :].
//
// `for_each_entry(fn)` calls fn(out_row, a, in_row) for every entry, with out_row in
// [0, out_rows) and in_row a valid row of rhs [*, num_cols]: the caller has validated the
// structure. `entries` (the number of entries) only sizes the parallel split.
template <typename Value, typename ForEachEntry>
void ScatterSpmm(const Executor& executor, int64_t out_rows, int64_t num_cols, int64_t entries,
                 const typename Value::Storage* rhs, typename Value::Storage* out,
                 const ForEachEntry& for_each_entry) {
  using Accum = typename Value::Accum;
  if (out_rows == 0 || num_cols == 0) return;
  const int64_t aligned_bands = (num_cols + kBandAlign - 1) / kBandAlign;
  const int64_t num_chunks =
      std::min(NumChunks(executor, entries * num_cols + out_rows), aligned_bands);
  const int64_t band = (aligned_bands + num_chunks - 1) / num_chunks * kBandAlign;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    const int64_t start = std::min(num_cols, chunk * band);
    const int64_t width = std::min(num_cols, start + band) - start;
    if (width <= 0) return;
    std::vector<Accum> acc(static_cast<size_t>(out_rows * width), Accum(0));
    CallBestIsa([&] {
      Accum* acc_data = acc.data();
      for_each_entry([&](int64_t out_row, Accum a, int64_t in_row) {
        ScaledAdd<Value>(width, a, rhs + in_row * num_cols + start, acc_data + out_row * width);
      });
      for (int64_t row = 0; row < out_rows; ++row) {
        for (int64_t j = 0; j < width; ++j) {
          out[row * num_cols + start + j] = Value::Store(acc_data[row * width + j]);
        }
      }
    });
  });
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_SCATTER_H_
