// CSR loop nests: A @ B, A.T @ B and SDDMM on A's pattern, free of XLA.
//
// A is [rows, cols] with `nse` stored positions: data [nse], col_indices [nse],
// row_offsets [rows + 1]; positions at or past row_offsets[rows] are padding, never read (SDDMM
// writes 0 there). Every function validates the structure before it reads through an index and
// returns "" on success or a message naming the argument and the first offending position (the
// output is then partly written). Storage is Value::Storage; dense operands are row-major.

#ifndef JSPARSE_CSRC_CSR_KERNELS_H_
#define JSPARSE_CSRC_CSR_KERNELS_H_

#include <cstdint>
#include <string>

#include "common.h"
#include "dense_rows.h"
#include "scatter.h"

namespace jsparse {

template <typename Index>
std::string CsrColumnMessage(const Index* col_indices, int64_t pos, int64_t cols) {
  return OutOfRangeMessage("col_indices", pos, col_indices[pos], cols, "K, the number of columns");
}

// out [rows, n] = A @ rhs, rhs [cols, n]. Rows are split across threads by nonzero count.
template <typename Value, typename Index>
std::string CsrSpmm(const Executor& executor, const typename Value::Storage* data,
                    const Index* col_indices, const Index* row_offsets, int64_t rows,
                    int64_t cols, int64_t nse, const typename Value::Storage* rhs, int64_t n,
                    typename Value::Storage* out) {
  std::string error = CheckRowOffsets(row_offsets, rows, nse);
  if (!error.empty()) return error;
  const int64_t work = static_cast<int64_t>(row_offsets[rows]) * n + rows;
  const int64_t num_chunks = NumChunks(executor, work);
  const auto bounds = SplitRowsByCost(row_offsets, rows, num_chunks, n);
  FirstFailure bad_column;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t row = bounds[chunk]; row < bounds[chunk + 1]; ++row) {
        const int64_t start = row_offsets[row], end = row_offsets[row + 1];
        const int64_t bad = FirstOutOfRange(col_indices + start, end - start, cols);
        if (bad >= 0) {
          bad_column.Report(start + bad);
          return;
        }
        AccumulateRow<Value>(n, [&](const auto& add) {
          for (int64_t pos = start; pos < end; ++pos) {
            if (pos + kPrefetchDistance < end) {
              PrefetchRow(rhs + static_cast<int64_t>(col_indices[pos + kPrefetchDistance]) * n,
                          n * sizeof(*rhs));
            }
            add(Value::Load(data[pos]), rhs + static_cast<int64_t>(col_indices[pos]) * n);
          }
        }, out + row * n);
      }
    });
  });
  if (bad_column.position() >= 0) return CsrColumnMessage(col_indices, bad_column.position(), cols);
  return "";
}

// out [cols, n] = A.T @ rhs, rhs [rows, n].
template <typename Value, typename Index>
std::string CsrSpmmTransposed(const Executor& executor, const typename Value::Storage* data,
                              const Index* col_indices, const Index* row_offsets, int64_t rows,
                              int64_t cols, int64_t nse, const typename Value::Storage* rhs,
                              int64_t n, typename Value::Storage* out) {
  std::string error = CheckRowOffsets(row_offsets, rows, nse);
  if (!error.empty()) return error;
  const int64_t stored = row_offsets[rows];
  const int64_t bad = FirstOutOfRange(col_indices, stored, cols);
  if (bad >= 0) return CsrColumnMessage(col_indices, bad, cols);
  ScatterSpmm<Value>(executor, cols, n, stored, rhs, out, [&](const auto& add) {
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t pos = row_offsets[row]; pos < row_offsets[row + 1]; ++pos) {
        add(static_cast<int64_t>(col_indices[pos]), Value::Load(data[pos]), row);
      }
    }
  });
  return "";
}

// values [nse]: values[pos] = x[row] . y[col_indices[pos]] for x [rows, depth], y [cols, depth];
// padding positions get 0.
template <typename Value, typename Index>
std::string CsrSddmm(const Executor& executor, const Index* col_indices, const Index* row_offsets,
                     int64_t rows, int64_t cols, int64_t nse, const typename Value::Storage* x,
                     const typename Value::Storage* y, int64_t depth,
                     typename Value::Storage* values) {
  std::string error = CheckRowOffsets(row_offsets, rows, nse);
  if (!error.empty()) return error;
  const int64_t stored = row_offsets[rows];
  for (int64_t pos = stored; pos < nse; ++pos) values[pos] = Value::Store(0);
  const int64_t num_chunks = NumChunks(executor, stored * depth + rows);
  const auto bounds = SplitRowsByCost(row_offsets, rows, num_chunks, depth);
  FirstFailure bad_column;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t row = bounds[chunk]; row < bounds[chunk + 1]; ++row) {
        const int64_t start = row_offsets[row], end = row_offsets[row + 1];
        const int64_t bad = FirstOutOfRange(col_indices + start, end - start, cols);
        if (bad >= 0) {
          bad_column.Report(start + bad);
          return;
        }
        for (int64_t pos = start; pos < end; ++pos) {
          values[pos] = Value::Store(Dot<Value>(
              depth, x + row * depth, y + static_cast<int64_t>(col_indices[pos]) * depth));
        }
      }
    });
  });
  if (bad_column.position() >= 0) return CsrColumnMessage(col_indices, bad_column.position(), cols);
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_CSR_KERNELS_H_
