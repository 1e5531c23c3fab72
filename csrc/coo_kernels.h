// COO loop nests: A @ B (or A.T @ B) and SDDMM on A's pattern, free of XLA.
//
// A is [rows, cols] with `nse` entries (data, row_indices, col_indices, each [nse]) in any order,
// without duplicates. An entry (rows, cols) is padding, as in jax.experimental.sparse.BCOO: it
// contributes nothing (SDDMM writes 0). Any other entry outside the matrix is an error, found
// before anything is read through it. Returns "" or a message naming the first bad entry.

#ifndef JSPARSE_CSRC_COO_KERNELS_H_
#define JSPARSE_CSRC_COO_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "common.h"
#include "csr_kernels.h"
#include "dense_rows.h"
#include "scatter.h"

namespace jsparse {

template <typename Index>
bool IsCooPadding(const Index* row_indices, const Index* col_indices, int64_t pos, int64_t rows,
                  int64_t cols) {
  return row_indices[pos] == rows && col_indices[pos] == cols;
}

template <typename Index>
std::string CheckCooIndices(const Index* row_indices, const Index* col_indices, int64_t nse,
                            int64_t rows, int64_t cols) {
  for (int64_t pos = 0; pos < nse; ++pos) {
    const int64_t row = row_indices[pos], col = col_indices[pos];
    if (row >= 0 && row < rows && col >= 0 && col < cols) continue;
    if (row == rows && col == cols) continue;
    return "entry " + std::to_string(pos) + " (row_indices[" + std::to_string(pos) + "] = " +
           std::to_string(row) + ", col_indices[" + std::to_string(pos) + "] = " +
           std::to_string(col) + ") is outside the " + std::to_string(rows) + "x" +
           std::to_string(cols) + " matrix and is not padding (" + std::to_string(rows) + ", " +
           std::to_string(cols) + ")";
  }
  return "";
}

// CheckCooIndices in one branch-free pass (it vectorises; the message is built only when an
// entry is bad), which also tells whether row_indices are non-decreasing.
template <typename Index>
std::string ScanCooIndices(const Index* row_indices, const Index* col_indices, int64_t nse,
                           int64_t rows, int64_t cols, bool* rows_sorted) {
  using Unsigned = std::make_unsigned_t<Index>;
  const int64_t widest = static_cast<int64_t>(std::numeric_limits<Index>::max());
  if (rows > widest || cols > widest) {
    // Padding (rows, cols) is not an Index: the exact checks below never meet it.
    *rows_sorted = false;
    return CheckCooIndices(row_indices, col_indices, nse, rows, cols);
  }
  // One unsigned compare catches index < 0 and index >= bound.
  const Unsigned row_bound = static_cast<Unsigned>(rows), col_bound = static_cast<Unsigned>(cols);
  Unsigned bad = 0, descents = 0;
  for (int64_t pos = 0; pos < nse; ++pos) {
    const Unsigned row = static_cast<Unsigned>(row_indices[pos]);
    const Unsigned col = static_cast<Unsigned>(col_indices[pos]);
    const Unsigned inside = (row < row_bound) & (col < col_bound);
    const Unsigned padding = (row == row_bound) & (col == col_bound);
    bad |= static_cast<Unsigned>((inside | padding) ^ 1u);
  }
  for (int64_t pos = 1; pos < nse; ++pos) {
    descents += static_cast<Unsigned>(row_indices[pos] < row_indices[pos - 1]);
  }
  *rows_sorted = descents == 0;
  return bad ? CheckCooIndices(row_indices, col_indices, nse, rows, cols) : "";
}

// out = A @ rhs ([rows, n], rhs [cols, n]) or, with transpose, A.T @ rhs ([cols, n], rhs
// [rows, n]). Entries sorted by row (as jsparse's own COO constructors and conversions make them)
// run as CSR, row offsets found in one pass: rows split across threads, output rows accumulated
// in registers. Entries in any other order, and A.T @ rhs, scatter, columns split across threads.
template <typename Value, typename Index>
std::string CooSpmm(const Executor& executor, const typename Value::Storage* data,
                    const Index* row_indices, const Index* col_indices, int64_t nse, int64_t rows,
                    int64_t cols, bool transpose, const typename Value::Storage* rhs, int64_t n,
                    typename Value::Storage* out) {
  bool rows_sorted = false;
  std::string error = ScanCooIndices(row_indices, col_indices, nse, rows, cols, &rows_sorted);
  if (!error.empty()) return error;
  if (!transpose && rows_sorted && nse <= std::numeric_limits<Index>::max()) {
    // Padding (row index `rows`) sorts last: row_offsets[rows] is where it starts. A binary
    // search per row (a linear pass over the entries cost a third of the product at 4096 x 4096,
    // s = 0.9, N = 32).
    std::vector<Index> row_offsets(rows + 1);
    const Index* found = row_indices;
    for (int64_t row = 0; row <= rows; ++row) {
      found = std::lower_bound(found, row_indices + nse, static_cast<Index>(row));
      row_offsets[row] = static_cast<Index>(found - row_indices);
    }
    return CsrSpmm<Value, Index>(executor, data, col_indices, row_offsets.data(), rows, cols, nse,
                                 rhs, n, out);
  }
  const Index* out_index = transpose ? col_indices : row_indices;
  const Index* in_index = transpose ? row_indices : col_indices;
  ScatterSpmm<Value>(executor, transpose ? cols : rows, n, nse, rhs, out, [&](const auto& add) {
    for (int64_t pos = 0; pos < nse; ++pos) {
      if (IsCooPadding(row_indices, col_indices, pos, rows, cols)) continue;
      add(static_cast<int64_t>(out_index[pos]), Value::Load(data[pos]),
          static_cast<int64_t>(in_index[pos]));
    }
  });
  return "";
}

// values [nse]: values[pos] = x[row_indices[pos]] . y[col_indices[pos]], x [rows, depth],
// y [cols, depth]; padding gets 0.
template <typename Value, typename Index>
std::string CooSddmm(const Executor& executor, const Index* row_indices, const Index* col_indices,
                     int64_t nse, int64_t rows, int64_t cols, const typename Value::Storage* x,
                     const typename Value::Storage* y, int64_t depth,
                     typename Value::Storage* values) {
  bool rows_sorted = false;
  std::string error = ScanCooIndices(row_indices, col_indices, nse, rows, cols, &rows_sorted);
  if (!error.empty()) return error;
  const int64_t num_chunks = NumChunks(executor, nse * depth);
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t pos = nse * chunk / num_chunks; pos < nse * (chunk + 1) / num_chunks; ++pos) {
        if (IsCooPadding(row_indices, col_indices, pos, rows, cols)) {
          values[pos] = Value::Store(0);
          continue;
        }
        values[pos] = Value::Store(Dot<Value>(depth, x + row_indices[pos] * depth,
                                              y + col_indices[pos] * depth));
      }
    });
  });
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_COO_KERNELS_H_
