// N:M loop nests: A @ B, A.T @ B and SDDMM on A's pattern, free of XLA.
//
// A is [rows, groups * m] with exactly n stored values in every group of m columns:
// data [rows, groups * n], indices uint8 [rows, groups * n]; stored value s of a row sits at
// column (s / n) * m + indices[row, s]. An index >= m is an error, found before it is used.
// Returns "" or a message naming the first offending position.

#ifndef JSPARSE_CSRC_NM_KERNELS_H_
#define JSPARSE_CSRC_NM_KERNELS_H_

#include <cstdint>
#include <string>

#include "common.h"
#include "dense_rows.h"
#include "scatter.h"

namespace jsparse {

struct NmPattern {
  int64_t n;  // values kept per group
  int64_t m;  // group size
};

inline std::string NmIndexMessage(const uint8_t* indices, int64_t pos, int64_t stored_per_row,
                                  NmPattern pattern) {
  return "indices[" + std::to_string(pos / stored_per_row) + ", " +
         std::to_string(pos % stored_per_row) + "] = " + std::to_string(indices[pos]) +
         " is out of range [0, " + std::to_string(pattern.m) + ") (m, the group size)";
}

inline int64_t NmColumn(const uint8_t* row_indices, int64_t s, NmPattern pattern) {
  return s / pattern.n * pattern.m + row_indices[s];
}

// out [rows, n_cols] = A @ rhs, rhs [groups * m, n_cols]. Rows (all of equal cost) are split
// evenly across threads.
template <typename Value>
std::string NmSpmm(const Executor& executor, const typename Value::Storage* data,
                   const uint8_t* indices, int64_t rows, int64_t groups, NmPattern pattern,
                   const typename Value::Storage* rhs, int64_t n_cols,
                   typename Value::Storage* out) {
  const int64_t per_row = groups * pattern.n;
  const int64_t num_chunks = NumChunks(executor, rows * per_row * n_cols + rows);
  FirstFailure bad_index;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t row = rows * chunk / num_chunks; row < rows * (chunk + 1) / num_chunks; ++row) {
        const uint8_t* row_indices = indices + row * per_row;
        const int64_t bad = FirstOutOfRange(row_indices, per_row, pattern.m);
        if (bad >= 0) {
          bad_index.Report(row * per_row + bad);
          return;
        }
        const auto* row_values = data + row * per_row;
        AccumulateRow<Value>(n_cols, [&](const auto& add) {
          for (int64_t s = 0; s < per_row; ++s) {
            if (s + kPrefetchDistance < per_row) {
              PrefetchRow(rhs + NmColumn(row_indices, s + kPrefetchDistance, pattern) * n_cols,
                          n_cols * sizeof(*rhs));
            }
            add(Value::Load(row_values[s]), rhs + NmColumn(row_indices, s, pattern) * n_cols);
          }
        }, out + row * n_cols);
      }
    });
  });
  if (bad_index.position() >= 0) {
    return NmIndexMessage(indices, bad_index.position(), per_row, pattern);
  }
  return "";
}

// out [groups * m, n_cols] = A.T @ rhs, rhs [rows, n_cols].
template <typename Value>
std::string NmSpmmTransposed(const Executor& executor, const typename Value::Storage* data,
                             const uint8_t* indices, int64_t rows, int64_t groups,
                             NmPattern pattern, const typename Value::Storage* rhs,
                             int64_t n_cols, typename Value::Storage* out) {
  const int64_t per_row = groups * pattern.n;
  const int64_t bad = FirstOutOfRange(indices, rows * per_row, pattern.m);
  if (bad >= 0) return NmIndexMessage(indices, bad, per_row, pattern);
  ScatterSpmm<Value>(executor, groups * pattern.m, n_cols, rows * per_row, rhs, out,
                     [&](const auto& add) {
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t s = 0; s < per_row; ++s) {
        add(NmColumn(indices + row * per_row, s, pattern), Value::Load(data[row * per_row + s]),
            row);
      }
    }
  });
  return "";
}

// values [rows, groups * n]: values[row, s] = x[row] . y[column of s], x [rows, depth],
// y [groups * m, depth].
template <typename Value>
std::string NmSddmm(const Executor& executor, const uint8_t* indices, int64_t rows,
                    int64_t groups, NmPattern pattern, const typename Value::Storage* x,
                    const typename Value::Storage* y, int64_t depth,
                    typename Value::Storage* values) {
  const int64_t per_row = groups * pattern.n;
  const int64_t num_chunks = NumChunks(executor, rows * per_row * depth + rows);
  FirstFailure bad_index;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t row = rows * chunk / num_chunks; row < rows * (chunk + 1) / num_chunks; ++row) {
        const uint8_t* row_indices = indices + row * per_row;
        const int64_t bad = FirstOutOfRange(row_indices, per_row, pattern.m);
        if (bad >= 0) {
          bad_index.Report(row * per_row + bad);
          return;
        }
        for (int64_t s = 0; s < per_row; ++s) {
          values[row * per_row + s] = Value::Store(Dot<Value>(
              depth, x + row * depth, y + NmColumn(row_indices, s, pattern) * depth));
        }
      }
    });
  });
  if (bad_index.position() >= 0) {
    return NmIndexMessage(indices, bad_index.position(), per_row, pattern);
  }
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_NM_KERNELS_H_
