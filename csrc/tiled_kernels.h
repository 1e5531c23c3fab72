// Tiled (bitmap) loop nest: A @ B, free of XLA.
//
// A is [rows, cols] in [tm, tk] tiles (jsparse.Tiled): bitmaps uint32 [Mt, Kt, tm, words]
// (tk = 32 words; bit b of word w of tile (i, j), tile row r marks element
// (i tm + r, j tk + 32 w + b)), row_offsets [Mt, Kt, tm] (position in data of each tile row's
// first value, values in column order), data [nse]. A set bit at a column >= cols, or a tile
// row whose values run past nse, is an error, found before it is used.
// Returns "" or a message naming the first offending position.

#ifndef JSPARSE_CSRC_TILED_KERNELS_H_
#define JSPARSE_CSRC_TILED_KERNELS_H_

#include <cstdint>
#include <string>

#include "common.h"
#include "dense_rows.h"

namespace jsparse {

struct TileGrid {
  int64_t tile_rows;     // Mt
  int64_t tile_cols;     // Kt
  int64_t tm;            // rows of a tile
  int64_t words;         // uint32 words of a tile row (tk = 32 words)
};

inline std::string TiledPositionName(const TileGrid& grid, int64_t tile_row_index) {
  const int64_t r = tile_row_index % grid.tm, tile = tile_row_index / grid.tm;
  return "[" + std::to_string(tile / grid.tile_cols) + ", " +
         std::to_string(tile % grid.tile_cols) + ", " + std::to_string(r) + "]";
}

// out [rows, n_cols] = A @ rhs, rhs [cols, n_cols]. Rows are split evenly across threads; each
// row walks its tile rows' set bits in column order, one stored value each.
template <typename Value, typename Index>
std::string TiledSpmm(const Executor& executor, const typename Value::Storage* data,
                      const uint32_t* bitmaps, const Index* row_offsets, int64_t rows,
                      int64_t cols, int64_t nse, const TileGrid& grid,
                      const typename Value::Storage* rhs, int64_t n_cols,
                      typename Value::Storage* out) {
  const int64_t tk = 32 * grid.words;
  const int64_t num_chunks = NumChunks(executor, nse * n_cols + rows * grid.tile_cols);
  FirstFailure bad_column, bad_offset;  // positions: tile row indices (row_offsets order)
  ParallelFor(executor, num_chunks, [&](int64_t chunk) {
    CallBestIsa([&] {
      for (int64_t row = rows * chunk / num_chunks; row < rows * (chunk + 1) / num_chunks; ++row) {
        // The row's tile row in tile column j: index base + j tm of row_offsets (and of
        // bitmaps' rows of words).
        const int64_t base = (row / grid.tm) * grid.tile_cols * grid.tm + row % grid.tm;
        // Check them first: values within data, and in the last tile column (the only one that
        // can reach past K) no bit at or past cols.
        for (int64_t j = 0; j < grid.tile_cols; ++j) {
          const int64_t index = base + j * grid.tm;
          const uint32_t* bits = bitmaps + index * grid.words;
          int64_t count = 0;
          for (int64_t w = 0; w < grid.words; ++w) count += __builtin_popcount(bits[w]);
          const int64_t start = static_cast<int64_t>(row_offsets[index]);
          if (start < 0 || start + count > nse) {
            bad_offset.Report(index);
            return;
          }
        }
        if (grid.tile_cols > 0) {
          const int64_t last = base + (grid.tile_cols - 1) * grid.tm;
          for (int64_t w = 0; w < grid.words; ++w) {
            const int64_t first = (grid.tile_cols - 1) * tk + 32 * w;
            const uint32_t word = bitmaps[last * grid.words + w];
            if (first + 32 > cols && (first >= cols ? word : word >> (cols - first))) {
              bad_column.Report(last);
              return;
            }
          }
        }
        AccumulateRow<Value>(n_cols, [&](const auto& add) {
          for (int64_t j = 0; j < grid.tile_cols; ++j) {
            const int64_t index = base + j * grid.tm;
            const uint32_t* bits = bitmaps + index * grid.words;
            int64_t position = static_cast<int64_t>(row_offsets[index]);
            for (int64_t w = 0; w < grid.words; ++w) {
              for (uint32_t word = bits[w]; word != 0; word &= word - 1) {
                const int64_t col = j * tk + 32 * w + __builtin_ctz(word);
                add(Value::Load(data[position++]), rhs + col * n_cols);
              }
            }
          }
        }, out + row * n_cols);
      }
    });
  });
  if (bad_column.position() >= 0) {
    return "bitmaps" + TiledPositionName(grid, bad_column.position()) +
           " marks a column at or past K = " + std::to_string(cols);
  }
  if (bad_offset.position() >= 0) {
    const int64_t index = bad_offset.position();
    return "row_offsets" + TiledPositionName(grid, index) + " = " +
           std::to_string(static_cast<int64_t>(row_offsets[index])) +
           ": the tile row's values run outside data (nse = " + std::to_string(nse) + ")";
  }
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_TILED_KERNELS_H_
