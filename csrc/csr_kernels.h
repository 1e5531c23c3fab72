// CSR loop nests: A @ B, A.T @ B and SDDMM on A's pattern, free of XLA.
//
// A is [rows, cols] with `nse` stored positions: data [nse], col_indices [nse],
// row_offsets [rows + 1]; positions at or past row_offsets[rows] are padding, never read (SDDMM
// writes 0 there). Every function validates the structure before it reads through an index and
// returns "" on success or a message naming the argument and the first offending position (the
// output is then partly written). Storage is Value::Storage; dense operands are row-major.

#ifndef JSPARSE_CSRC_CSR_KERNELS_H_
#define JSPARSE_CSRC_CSR_KERNELS_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "common.h"
#include "dense_rows.h"
#include "scatter.h"

namespace jsparse {

template <typename Index>
std::string CsrColumnMessage(const Index* col_indices, int64_t pos, int64_t cols) {
  return OutOfRangeMessage("col_indices", pos, col_indices[pos], cols, "K, the number of columns");
}

// Bytes of B (and of the entries of A that index it) that one K tile of the row-wise product
// spans: it stays in L2 (512 KiB a core on AMD EPYC Zen 3) beside the chunk's partial sums, so
// the rows of B that every term reads come from L2 rather than L3. On the 2-core EPYC, 16-32
// KiB (L1) tiles in its place were 1.5-2x slower at s >= 0.9 (too few terms per row and tile);
// they win only where rows are dense (kL1TileBytes, below).
constexpr int64_t kTileBytes = 256 << 10;

// Fewest multiply-adds a row's run of terms in one K tile must average (over the chunk) for the
// chunk to be K-tiled: every run loads and stores the row's partial sums and searches for its
// end, which short runs do not repay. Measured after the index scan was vectorised and the CSR
// prefetch dropped (4096 x 4096, two threads, best of 3 x 30-40 calls, load 2.7-3; tiled ->
// untiled): s = 0.7 N = 32 (runs of ~5800) 15.8 -> 18.1 ms and s = 0.9 N = 128 (~5500) 15.4 ->
// 20.2 ms favour tiles; s = 0.9 N = 32 (~3650) 3.13 -> 2.80 ms, s = 0.95 N = 32 (~2300) 1.85 ->
// 1.38 ms, s = 0.98 N = 32 (~1100) 1.22 -> 1.02 ms, s = 0.98 N = 128 (~1250) 3.90 -> 3.16 ms,
// s = 0.99 N = 128 2.58 -> 1.53 ms do not; s = 0.95 N = 128 (~3200) is even.
constexpr int64_t kMinTileRunWork = 4096;

// L1 tiles: where B is at most kMaxL1TiledRhsBytes (it stays in L2 across tiles) and rows are
// dense enough that a row's run of terms in a tile of kL1TileBytes of B (rows of B only: the
// entries of A stream past) averages kMinL1TileRunWork multiply-adds, K tiles of that size keep
// the rows every term reads in L1 and beat both the untiled loop and the L2 tiles above. One
// thread, uniform random, s = 0.7, best of 5 x 30 calls (thread CPU time, load 1-1.3), untiled
// or L2 tiles -> 32 KiB tiles: N = 128 (runs of ~2450) 512 x 512 0.94 -> 0.64 ms, 2048 x 512
// 2.88 -> 2.43, 512 x 2048 3.02 -> 2.65; N = 32 512 x 512 0.187 -> 0.163, 512 x 2048 0.84 ->
// 0.70, 2048 x 512 0.79 -> 0.73, 4096 x 4096 13.6 -> 11.8. Shorter runs lose: s = 0.8 N = 128
// (~1640) 0.95-1.08x, s = 0.9 0.65x; so does a B of 2 MiB (4096 x 4096 N = 128: 0.90x, its
// tiles refilled from L3). BUILD_NOTES.md has the sweep.
constexpr int64_t kL1TileBytes = 32 << 10;
constexpr int64_t kMinL1TileRunWork = 2048;
constexpr int64_t kMaxL1TiledRhsBytes = 1 << 20;

// Columns per K tile for a chunk of `chunk_rows` sorted rows holding `entries` terms, or 0: run
// untiled. B is [cols, n] of `value_bytes` values; an entry of A takes `entry_bytes`.
//
// L1 tiles (kL1TileBytes of B's rows) where B fits kMaxL1TiledRhsBytes and the rows' runs are
// long enough; else L2 tiles (kTileBytes) only when B outgrows that budget (a B that fits stays
// cached untiled: SpMV, small N or K). An L2 tile's rows of B share the budget with the chunk's
// entries of A that fall in the tile: read once, but streamed through L2 in the same pass, they
// would evict B. (Measured: 1.6-2x faster at N = 32, sparsity 0.7-0.9, than a tile of B alone;
// N = 128 unchanged.)
inline int64_t CsrKTile(int64_t cols, int64_t n, int64_t value_bytes, int64_t entry_bytes,
                        int64_t entries, int64_t chunk_rows) {
  const int64_t row_bytes = std::max<int64_t>(1, n * value_bytes);
  const int64_t rhs_bytes = cols * row_bytes;
  // Multiply-adds a row's run of terms in a tile of `tile_cols` columns averages.
  auto run_work = [&](int64_t tile_cols) {
    return entries * tile_cols / std::max<int64_t>(1, cols) * n / std::max<int64_t>(1, chunk_rows);
  };
  const int64_t l1_tile = std::max<int64_t>(1, kL1TileBytes / row_bytes);
  if (rhs_bytes > kL1TileBytes && rhs_bytes <= kMaxL1TiledRhsBytes && l1_tile < cols &&
      run_work(l1_tile) >= kMinL1TileRunWork) {
    return l1_tile;
  }
  const int64_t bytes_per_k = row_bytes + entries * entry_bytes / std::max<int64_t>(1, cols);
  const int64_t l2_tile = std::max<int64_t>(1, kTileBytes / bytes_per_k);
  if (rhs_bytes > kTileBytes && l2_tile < cols && run_work(l2_tile) >= kMinTileRunWork) {
    return l2_tile;
  }
  return 0;
}

// Fewest times over that a K-tiled chunk of CsrSpmm should read B's rows (its terms over K, the
// rows of B). Every K-tiled chunk streams all of B through the caches again (from L3 where B
// outgrows L2), so chunks that read it only a few times over spend their time refilling tiles.
// Loop nest alone, two threads, uniform random, per run the best of 30 calls, runs alternating
// (2-core EPYC, load 1.2-2.5 from other processes), medians of the runs, ms: 512 x 2048 N = 128
// (32 -> 9 chunks) s = 0.7 2.28 -> 1.93 (12 runs) and 5.1 -> 4.5 (10 runs, load 2-2.5), s = 0.8
// 1.52 -> 1.33 (8 runs); 4096 x 4096 keeps its 32 chunks (B read 40-80 times over by each).
constexpr int64_t kMinTiledRhsReuse = 16;

// Chunks for CsrSpmm: NumChunks', but fewer where the chunks run K-tiled and each would read B
// fewer than kMinTiledRhsReuse times over; at least 2 a thread stay, for balance.
inline int64_t CsrNumChunks(const Executor& executor, int64_t work, int64_t entries,
                            int64_t rows, int64_t cols, int64_t n, int64_t value_bytes,
                            int64_t entry_bytes) {
  const int64_t num_chunks = NumChunks(executor, work);
  if (num_chunks <= 1 || CsrKTile(cols, n, value_bytes, entry_bytes, entries, rows) == 0) {
    return num_chunks;
  }
  const int64_t rhs_reads = entries / std::max<int64_t>(1, cols);  // B read over, all chunks
  const int64_t by_reuse = rhs_reads / kMinTiledRhsReuse;
  const int64_t fewest = std::min(num_chunks, 2 * (executor.num_workers() + 1));
  return std::max(fewest, std::min(num_chunks, by_reuse));
}

// Calls fn(a, rhs_row) for the terms at positions [start, stop) of a CSR row.
//
// No software prefetch of B's rows: the rows of B that sorted rows read are in L2 (a K tile, or a
// B of at most kTileBytes), where out-of-order execution hides the latency, and the prefetch's
// index load and branch cost issue slots (A's runs in K-tiled chunks are prefetched instead:
// kRunPrefetchRows). Measured against prefetching 2 lines 8 terms ahead (2-core EPYC,
// load 2-3, best of 3-4 x 60 calls): one thread, 512 x 512 s = 0.9 N = 32 0.078-0.083 ->
// 0.058-0.064 ms, 4096 x 4096 s = 0.7 N = 32 14.5 -> 13.0 ms, s = 0.9 N = 128 15.4 -> 14.6 ms,
// 2048 x 512 s = 0.9 N = 128 0.97 -> 1.04 ms; two threads, 4096 x 4096 s = 0.7 N = 128 27.2 ->
// 24.0 ms, s = 0.9 N = 32 3.0 -> 3.0 ms. Distances 4 and 16 were no better than 8. (Unsorted
// rows with a B beyond L2, possible only for unvalidated traced data, were not measured.)
template <typename Value, typename Index>
struct CsrTerms {
  const typename Value::Storage* data;
  const Index* col_indices;
  const typename Value::Storage* rhs;
  int64_t n;

  template <typename Fn>
  void operator()(int64_t start, int64_t stop, const Fn& fn) const {
    for (int64_t pos = start; pos < stop; ++pos) {
      fn(Value::Load(data[pos]), rhs + static_cast<int64_t>(col_indices[pos]) * n);
    }
  }
};

// Checks the column indices of rows [first_row, last_row) in one pass over all their positions.
// Returns the first position outside [0, cols) (-1: none) and sets *sorted to whether every
// row's indices are non-decreasing: the pass's descents all fall on row starts.
template <typename Index>
int64_t ScanRowIndices(const Index* col_indices, const Index* row_offsets, int64_t first_row,
                       int64_t last_row, int64_t cols, bool* sorted) {
  const int64_t begin = row_offsets[first_row], end = row_offsets[last_row];
  const IndexScan scan = ScanIndices(col_indices + begin, end - begin, cols);
  if (scan.first_bad >= 0) return begin + scan.first_bad;
  int64_t at_row_starts = 0;
  for (int64_t row = first_row + 1, last_start = begin; row < last_row; ++row) {
    const int64_t start = row_offsets[row];
    if (start > last_start && start < end) {
      at_row_starts += col_indices[start] < col_indices[start - 1];
    }
    last_start = start;
  }
  *sorted = scan.descents == at_row_starts;
  return -1;
}

// Whether a row of `n` columns runs through CsrRowPairs: exactly 4 vectors of float32/64 (N = 32
// float32, N = 16 float64; bfloat16 keeps AccumulateRow).
template <typename Value>
constexpr bool kPairsApply = std::is_same_v<typename Value::Storage, typename Value::Accum>;
template <typename Value>
inline bool UsesPairs(int64_t n) {
  return kPairsApply<Value> && n == 4 * Vector32<typename Value::Accum>::kLanes;
}

// target[0:n] (=|+=) the terms [start, stop) of a row, for n = 4 vectors: two sets of four sums
// over alternate terms (8 of the 16 ymm registers), added at the end; the loop steps two terms at
// a time. With one set each term's FMA waits on the one before (4 cycles of FMA latency on Zen 3,
// about a term's time from L2). Loop nest alone, one thread, uniform random N = 32, thread CPU
// time, medians of 400-600 calls, the two builds alternating over 4-6 rounds (2-core EPYC, load
// 1.2-1.5), one set -> two, ms: 2048 x 512 s = 0.95 0.117-0.120 (one round 0.088) ->
// 0.105-0.110, 512 x 2048 s = 0.95 0.178-0.192 -> 0.172-0.185, 512 x 512 s = 0.95 0.030-0.034 ->
// 0.026-0.033, s = 0.7 0.151-0.155 -> 0.148-0.150; s = 0.9 even (2048 x 512 0.203-0.206 ->
// 0.199-0.223), s = 0.98 and 4096 x 4096 even within the noise (BUILD_NOTES.md has all runs).
// (An earlier trial of two register sets through AccumulatePanel's per-term callback measured no
// change; this loop takes the terms in pairs itself.)
template <typename Value, bool kAddInto, typename Index>
inline void CsrRowPairs(const CsrTerms<Value, Index>& terms, int64_t start, int64_t stop,
                        typename Value::Accum* target) {
  using Accum = typename Value::Accum;
  using Vec = typename Vector32<Accum>::type;
  constexpr int64_t lanes = Vector32<Accum>::kLanes;
  Vec a0{}, a1{}, a2{}, a3{}, b0{}, b1{}, b2{}, b3{};
  if constexpr (kAddInto) {
    std::memcpy(&a0, target, sizeof(Vec));
    std::memcpy(&a1, target + lanes, sizeof(Vec));
    std::memcpy(&a2, target + 2 * lanes, sizeof(Vec));
    std::memcpy(&a3, target + 3 * lanes, sizeof(Vec));
  }
  const Accum* data = terms.data;
  const Index* cols = terms.col_indices;
  const int64_t n = terms.n;
  int64_t pos = start;
  for (; pos + 2 <= stop; pos += 2) {
    const Accum x = data[pos], y = data[pos + 1];
    const Accum* r = terms.rhs + static_cast<int64_t>(cols[pos]) * n;
    const Accum* q = terms.rhs + static_cast<int64_t>(cols[pos + 1]) * n;
    asm("" : "+r"(r), "+r"(q));
    Vec v;
    std::memcpy(&v, r, sizeof(Vec)); a0 += x * v;
    std::memcpy(&v, r + lanes, sizeof(Vec)); a1 += x * v;
    std::memcpy(&v, r + 2 * lanes, sizeof(Vec)); a2 += x * v;
    std::memcpy(&v, r + 3 * lanes, sizeof(Vec)); a3 += x * v;
    std::memcpy(&v, q, sizeof(Vec)); b0 += y * v;
    std::memcpy(&v, q + lanes, sizeof(Vec)); b1 += y * v;
    std::memcpy(&v, q + 2 * lanes, sizeof(Vec)); b2 += y * v;
    std::memcpy(&v, q + 3 * lanes, sizeof(Vec)); b3 += y * v;
  }
  if (pos < stop) {
    const Accum x = data[pos];
    const Accum* r = terms.rhs + static_cast<int64_t>(cols[pos]) * n;
    Vec v;
    std::memcpy(&v, r, sizeof(Vec)); a0 += x * v;
    std::memcpy(&v, r + lanes, sizeof(Vec)); a1 += x * v;
    std::memcpy(&v, r + 2 * lanes, sizeof(Vec)); a2 += x * v;
    std::memcpy(&v, r + 3 * lanes, sizeof(Vec)); a3 += x * v;
  }
  a0 += b0; a1 += b1; a2 += b2; a3 += b3;
  std::memcpy(target, &a0, sizeof(Vec));
  std::memcpy(target + lanes, &a1, sizeof(Vec));
  std::memcpy(target + 2 * lanes, &a2, sizeof(Vec));
  std::memcpy(target + 3 * lanes, &a3, sizeof(Vec));
}

// out rows [first_row, last_row) of A @ rhs, one row at a time over all its terms.
template <typename Value, typename Index>
void CsrSpmmRows(const CsrTerms<Value, Index>& terms, const Index* row_offsets, int64_t first_row,
                 int64_t last_row, typename Value::Storage* out) {
  const int64_t n = terms.n;
  if constexpr (kPairsApply<Value>) {
    if (UsesPairs<Value>(n)) {
      for (int64_t row = first_row; row < last_row; ++row) {
        CsrRowPairs<Value, false>(terms, row_offsets[row], row_offsets[row + 1], out + row * n);
      }
      return;
    }
  }
  for (int64_t row = first_row; row < last_row; ++row) {
    const int64_t start = row_offsets[row], stop = row_offsets[row + 1];
    AccumulateRow<Value>(n, [&](const auto& add) { terms(start, stop, add); }, out + row * n);
  }
}

// K-tiled chunks whose entries of A outgrow L2 ("streamed": kMinStreamedChunkBytes, 1.5 times
// the 512 KiB L2 of a Zen 3 core; 4096 x 4096 at s = 0.7 and 0.8 on issue 6's grid, 1.26 MiB
// and 840 KiB a chunk) differ in two ways (CsrSpmmRowsTiled<true>):
// - Prefetch: a K-tiled chunk visits each row's run once a tile, 128 rows apart at 4096 x 4096:
//   too many streams for the hardware prefetcher, so every run started with a miss to L3 or
//   memory (A is 40 MB at s = 0.7), which out-of-order execution could not hide behind the
//   run's ~400 cycles of arithmetic. Row i + kRunPrefetchRows's run in this tile starts where
//   its run in the last tile ended; its lines are prefetched (the chunk's average run, + 2).
// - Validation run by run instead of a separate scan of the chunk's indices before the product
//   (ScanRowIndices: a second pass over 630 KiB of indices a chunk, from memory).
// Loop nest alone (spmm_bench's matrices, two threads; each build's call alternating with the
// other's in one process, 30-40 calls each, median ms; the old build's headers in a namespace of
// their own), old -> new: 4096 x 4096 N = 32 s = 0.7 8.6 -> 6.9 and s = 0.8 6.5 -> 5.5 (load
// 1.1); under a load of 2.1-2.6 (another process's compile on one core) s = 0.7 N = 32 17.0 ->
// 11.9, s = 0.8 N = 32 10.6 -> 9.2, N = 128 32.8 -> 30.7, s = 0.7 N = 128 49 -> 45. Keeping the
// scan as well: 12.7, 9.9, 31.3, 47.6 (the prefetch is most of the gain); the run checks with
// the scan and without the prefetch cost 1-4%. Not streamed, as no steady gain showed: 4096 x
// 4096 s = 0.9 N = 128 (537 KiB chunks; from -4% to +10% across three runs) and chunks that stay
// cached (DLMC 512 x 512 and 2048 x 512 at s = 0.7, 70-80 KiB a chunk: the prefetch alone lost
// up to 6% at N = 32, 0.130 -> 0.138 ms; the run checks lost 15% at N = 128, 0.40 -> 0.46 ms,
// 2048 x 512 1.29 -> 1.48 ms, runs of ~20 terms). Rows 3 ahead, 4-10 lines a run whatever its
// length, prefetching into L2 only (prefetcht1 / nta) measured the same; prefetching the next
// tile's rows of B as well gained nothing.
constexpr int64_t kMinStreamedChunkBytes = 768 << 10;
constexpr int64_t kRunPrefetchRows = 2;

// Whether a K-tiled chunk of `entries` entries of `entry_bytes` each runs streamed.
inline bool CsrChunkStreamed(int64_t entries, int64_t entry_bytes) {
  return entries * entry_bytes >= kMinStreamedChunkBytes;
}

// Brings `lines` cache lines from `address` on towards L1 (addresses past the array are fine:
// a prefetch never faults; the address is formed as an integer, not by pointer arithmetic).
inline void PrefetchLines(const void* address, int64_t lines) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(address);
  for (int64_t line = 0; line < lines; ++line) {
    __builtin_prefetch(reinterpret_cast<const void*>(start + 64 * line));
  }
}

// Whether every index in [begin, end) lies in [low, high): one pass of min/max (vectorised).
template <typename Index>
inline bool RunInRange(const Index* indices, int64_t begin, int64_t end, int64_t low,
                       int64_t high) {
  if (begin >= end) return true;
  Index least = indices[begin], most = indices[begin];
  for (int64_t pos = begin + 1; pos < end; ++pos) {
    least = std::min(least, indices[pos]);
    most = std::max(most, indices[pos]);
  }
  return static_cast<int64_t>(least) >= low && static_cast<int64_t>(most) < high;
}

// The same rows, K split into tiles of `tile` columns: every row adds its terms of one tile
// before any row moves to the next, so the tile's rows of B are read from L1/L2 by all of them.
// Float32/64 sums accumulate in `out` itself; bfloat16 in a float32 buffer. Returns true.
//
// Unless kStreamed, column indices must have been checked and sorted within each row (a row's
// terms of a tile are then a run). kStreamed (CsrChunkStreamed) prefetches the runs of row
// i + kRunPrefetchRows and checks the indices itself, run by run, before it reads B through
// them: a run (from where the row's last run ended, while indices are below the tile's end) must
// hold only indices in [tile start, min(tile end, cols)), and the last tile must leave no row
// with positions not taken. Sorted rows always pass (rows out of order only inside one tile pass
// too: the same terms, summed in stored order). Otherwise -- an index out of range, or rows out
// of order across tiles -- it returns false with `out` partly written, and the caller scans the
// indices (for the message) and runs the chunk untiled.
template <bool kStreamed, typename Value, typename Index>
bool CsrSpmmRowsTiled(const CsrTerms<Value, Index>& terms, const Index* row_offsets,
                      int64_t first_row, int64_t last_row, int64_t cols, int64_t tile,
                      typename Value::Storage* out) {
  using Accum = typename Value::Accum;
  using Storage = typename Value::Storage;
  const int64_t n = terms.n, count = last_row - first_row;
  std::vector<Accum> buffer;
  Accum* sums;
  if constexpr (std::is_same_v<Accum, Storage>) {
    sums = out + first_row * n;
  } else {
    buffer.resize(count * n);
    sums = buffer.data();
  }
  std::fill(sums, sums + count * n, Accum(0));
  std::vector<int64_t> next(row_offsets + first_row, row_offsets + last_row);
  const bool prefetch = kStreamed && count > kRunPrefetchRows;
  int64_t index_lines = 0, value_lines = 0;
  if constexpr (kStreamed) {
    // Lines a run spans, from the chunk's average run, plus 2.
    const int64_t entries = static_cast<int64_t>(row_offsets[last_row] - row_offsets[first_row]);
    const int64_t run_terms =
        entries * tile / std::max<int64_t>(1, cols) / std::max<int64_t>(1, count);
    index_lines = std::min<int64_t>(16, run_terms * static_cast<int64_t>(sizeof(Index)) / 64 + 2);
    value_lines =
        std::min<int64_t>(16, run_terms * static_cast<int64_t>(sizeof(Storage)) / 64 + 2);
  }
  for (int64_t tile_end = tile;; tile_end += tile) {
    for (int64_t i = 0; i < count; ++i) {
      if (prefetch) {
        // Row i + 2's run in this tile; past the last row, the first rows' runs in the next.
        int64_t ahead = i + kRunPrefetchRows;
        if (ahead >= count) ahead -= count;
        PrefetchLines(terms.col_indices + next[ahead], index_lines);
        PrefetchLines(terms.data + next[ahead], value_lines);
      }
      const int64_t start = next[i], row_end = row_offsets[first_row + i + 1];
      // The row's run in this tile: strides of 8 sorted indices, then single steps (one index
      // at a time cost 13-20% of a single-thread 4096 x 4096 N = 32 product, s = 0.7-0.9).
      int64_t stop = start;
      while (stop + 8 <= row_end && static_cast<int64_t>(terms.col_indices[stop + 7]) < tile_end) {
        stop += 8;
      }
      while (stop < row_end && static_cast<int64_t>(terms.col_indices[stop]) < tile_end) ++stop;
      next[i] = stop;
      if (stop > start) {
        if constexpr (kStreamed) {
          if (!RunInRange(terms.col_indices, start, stop, tile_end - tile,
                          std::min(tile_end, cols))) {
            return false;
          }
        }
        if constexpr (kPairsApply<Value>) {
          if (UsesPairs<Value>(n)) {
            CsrRowPairs<Value, true>(terms, start, stop, sums + i * n);
            continue;
          }
        }
        AddToRow<Value>(n, [&](const auto& add) { terms(start, stop, add); }, sums + i * n);
      }
    }
    if (tile_end >= cols) break;
  }
  if constexpr (kStreamed) {
    for (int64_t i = 0; i < count; ++i) {
      if (next[i] != static_cast<int64_t>(row_offsets[first_row + i + 1])) return false;
    }
  }
  if constexpr (!std::is_same_v<Accum, Storage>) {
    for (int64_t j = 0; j < count * n; ++j) out[first_row * n + j] = Value::Store(sums[j]);
  }
  return true;
}

// out [rows, n] = A @ rhs, rhs [cols, n]. Rows are split across threads by nonzero count. A chunk
// whose B is larger than a tile (CsrKTile) and whose rows are sorted runs K-tiled. Chunks whose
// entries outgrow L2 (CsrChunkStreamed) check their column indices run by run as they go; the
// others, and streamed chunks whose check fails, first check theirs in one vectorised pass
// (ScanRowIndices).
template <typename Value, typename Index>
std::string CsrSpmm(const Executor& executor, const typename Value::Storage* data,
                    const Index* col_indices, const Index* row_offsets, int64_t rows,
                    int64_t cols, int64_t nse, const typename Value::Storage* rhs, int64_t n,
                    typename Value::Storage* out) {
  std::string error = CheckRowOffsets(row_offsets, rows, nse);
  if (!error.empty()) return error;
  const int64_t work = static_cast<int64_t>(row_offsets[rows]) * n + rows;
  const int64_t num_chunks =
      CsrNumChunks(executor, work, row_offsets[rows], rows, cols, n, sizeof(*rhs),
                   sizeof(*data) + sizeof(*col_indices));
  const auto bounds = SplitRowsByCost(row_offsets, rows, num_chunks, n);
  const CsrTerms<Value, Index> terms{data, col_indices, rhs, n};
  FirstFailure bad_column;
  // The whole chunk runs in the ISA CallBestIsa picks, its index checks included (measured: the
  // scan in the baseline ISA cost 0.03 ms more of 0.7 at 2048 x 512, s = 0.7).
  ParallelFor(executor, num_chunks, [&](int64_t chunk) { CallBestIsa([&] {
    const int64_t first_row = bounds[chunk], last_row = bounds[chunk + 1];
    const int64_t entries = static_cast<int64_t>(row_offsets[last_row] - row_offsets[first_row]);
    const int64_t tile = CsrKTile(cols, n, sizeof(*rhs), sizeof(*data) + sizeof(*col_indices),
                                  entries, last_row - first_row);
    // Streamed K-tiled chunks check their indices run by run as they go (CsrSpmmRowsTiled<true>);
    // one that fails (a bad index, or rows out of order across tiles) is scanned and runs
    // untiled.
    const bool streamed = CsrChunkStreamed(entries, sizeof(*data) + sizeof(*col_indices));
    if (tile > 0 && streamed &&
        CsrSpmmRowsTiled<true>(terms, row_offsets, first_row, last_row, cols, tile, out)) {
      return;
    }
    bool sorted = false;
    const int64_t bad = ScanRowIndices(col_indices, row_offsets, first_row, last_row, cols,
                                       &sorted);
    if (bad >= 0) {
      bad_column.Report(bad);
      return;
    }
    // Sorted rows may run K-tiled (CsrKTile); rows out of order cannot (a tile's terms would
    // not be a run).
    if (tile > 0 && sorted && !streamed) {
      CsrSpmmRowsTiled<false>(terms, row_offsets, first_row, last_row, cols, tile, out);
    } else {
      CsrSpmmRows(terms, row_offsets, first_row, last_row, out);
    }
  }); });
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
