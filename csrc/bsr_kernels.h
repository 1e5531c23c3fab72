// BSR loop nests: A @ B, A.T @ B and SDDMM on A's block pattern, free of XLA.
//
// A is [block_rows * bm, block_cols * bk] with `nse` stored blocks: data [nse, bm, bk],
// col_indices [nse] (block columns), row_offsets [block_rows + 1]; blocks at or past
// row_offsets[block_rows] are padding, never read (SDDMM writes 0 there). Returns "" or a message
// naming the argument and the first offending position.

#ifndef JSPARSE_CSRC_BSR_KERNELS_H_
#define JSPARSE_CSRC_BSR_KERNELS_H_

#include <cstdint>
#include <string>

#include "common.h"
#include "dense_rows.h"
#include "scatter.h"

namespace jsparse {

struct BlockShape {
  int64_t rows;  // bm
  int64_t cols;  // bk
};

template <typename Index>
std::string BsrColumnMessage(const Index* col_indices, int64_t pos, int64_t block_cols) {
  return OutOfRangeMessage("col_indices", pos, col_indices[pos], block_cols,
                           "K / bk, the number of block columns");
}

// out [block_rows * bm, n] = A @ rhs, rhs [block_cols * bk, n]. Block rows are split across
// threads by block count.
template <typename Value, typename Index>
std::string BsrSpmm(const Executor& executor, const typename Value::Storage* data,
                    const Index* col_indices, const Index* row_offsets, int64_t block_rows,
                    int64_t block_cols, BlockShape block, int64_t nse,
                    const typename Value::Storage* rhs, int64_t n, typename Value::Storage* out) {
  std::string error = CheckRowOffsets(row_offsets, block_rows, nse);
  if (!error.empty()) return error;
  const int64_t block_size = block.rows * block.cols;
  const int64_t work = static_cast<int64_t>(row_offsets[block_rows]) * block_size * n + block_rows;
  const int64_t num_chunks = NumChunks(executor, work);
  const auto bounds = SplitRowsByCost(row_offsets, block_rows, num_chunks, block_size * n);
  FirstFailure bad_column;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t block_row = bounds[chunk]; block_row < bounds[chunk + 1]; ++block_row) {
        const int64_t start = row_offsets[block_row], end = row_offsets[block_row + 1];
        const int64_t bad = FirstOutOfRange(col_indices + start, end - start, block_cols);
        if (bad >= 0) {
          bad_column.Report(start + bad);
          return;
        }
        for (int64_t i = 0; i < block.rows; ++i) {
          AccumulateRow<Value>(n, [&](const auto& add) {
            for (int64_t pos = start; pos < end; ++pos) {
              if (pos + 1 < end) {
                PrefetchRow(rhs + static_cast<int64_t>(col_indices[pos + 1]) * block.cols * n,
                            block.cols * n * sizeof(*rhs));
              }
              const auto* block_row_values = data + (pos * block.rows + i) * block.cols;
              const auto* rhs_rows = rhs + static_cast<int64_t>(col_indices[pos]) * block.cols * n;
              for (int64_t j = 0; j < block.cols; ++j) {
                add(Value::Load(block_row_values[j]), rhs_rows + j * n);
              }
            }
          }, out + (block_row * block.rows + i) * n);
        }
      }
    });
  });
  if (bad_column.position() >= 0) {
    return BsrColumnMessage(col_indices, bad_column.position(), block_cols);
  }
  return "";
}

// out [block_cols * bk, n] = A.T @ rhs, rhs [block_rows * bm, n].
template <typename Value, typename Index>
std::string BsrSpmmTransposed(const Executor& executor, const typename Value::Storage* data,
                              const Index* col_indices, const Index* row_offsets,
                              int64_t block_rows, int64_t block_cols, BlockShape block,
                              int64_t nse, const typename Value::Storage* rhs, int64_t n,
                              typename Value::Storage* out) {
  std::string error = CheckRowOffsets(row_offsets, block_rows, nse);
  if (!error.empty()) return error;
  const int64_t stored = row_offsets[block_rows];
  const int64_t bad = FirstOutOfRange(col_indices, stored, block_cols);
  if (bad >= 0) return BsrColumnMessage(col_indices, bad, block_cols);
  ScatterSpmm<Value>(executor, block_cols * block.cols, n, stored * block.rows * block.cols, rhs,
                     out, [&](const auto& add) {
    for (int64_t block_row = 0; block_row < block_rows; ++block_row) {
      for (int64_t pos = row_offsets[block_row]; pos < row_offsets[block_row + 1]; ++pos) {
        const int64_t first_col = static_cast<int64_t>(col_indices[pos]) * block.cols;
        for (int64_t i = 0; i < block.rows; ++i) {
          for (int64_t j = 0; j < block.cols; ++j) {
            add(first_col + j, Value::Load(data[(pos * block.rows + i) * block.cols + j]),
                block_row * block.rows + i);
          }
        }
      }
    }
  });
  return "";
}

// values [nse, bm, bk]: values[pos, i, j] = x[r * bm + i] . y[c * bk + j] for the block (r, c) at
// pos; x [block_rows * bm, depth], y [block_cols * bk, depth]; padding blocks get 0.
template <typename Value, typename Index>
std::string BsrSddmm(const Executor& executor, const Index* col_indices, const Index* row_offsets,
                     int64_t block_rows, int64_t block_cols, BlockShape block, int64_t nse,
                     const typename Value::Storage* x, const typename Value::Storage* y,
                     int64_t depth, typename Value::Storage* values) {
  std::string error = CheckRowOffsets(row_offsets, block_rows, nse);
  if (!error.empty()) return error;
  const int64_t block_size = block.rows * block.cols;
  const int64_t stored = row_offsets[block_rows];
  for (int64_t k = stored * block_size; k < nse * block_size; ++k) values[k] = Value::Store(0);
  const int64_t num_chunks = NumChunks(executor, stored * block_size * depth + block_rows);
  const auto bounds = SplitRowsByCost(row_offsets, block_rows, num_chunks, block_size * depth);
  FirstFailure bad_column;
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t block_row = bounds[chunk]; block_row < bounds[chunk + 1]; ++block_row) {
        const int64_t start = row_offsets[block_row], end = row_offsets[block_row + 1];
        const int64_t bad = FirstOutOfRange(col_indices + start, end - start, block_cols);
        if (bad >= 0) {
          bad_column.Report(start + bad);
          return;
        }
        for (int64_t pos = start; pos < end; ++pos) {
          const int64_t first_col = static_cast<int64_t>(col_indices[pos]) * block.cols;
          for (int64_t i = 0; i < block.rows; ++i) {
            for (int64_t j = 0; j < block.cols; ++j) {
              values[(pos * block.rows + i) * block.cols + j] = Value::Store(Dot<Value>(
                  depth, x + (block_row * block.rows + i) * depth, y + (first_col + j) * depth));
            }
          }
        }
      }
    });
  });
  if (bad_column.position() >= 0) {
    return BsrColumnMessage(col_indices, bad_column.position(), block_cols);
  }
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_BSR_KERNELS_H_
