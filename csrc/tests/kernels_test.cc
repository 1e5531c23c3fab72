// A C++ test of the loop nests, without XLA or Python, for the sanitizer build (BUILD_NOTES.md):
// every kernel on random matrices with NaN-poisoned outputs (every element must be written)
// against a float64 dense reference, on one thread and on several, then invalid structure
// (every kernel must return an error, never read out of bounds). Exits non-zero on a failure.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bsr_kernels.h"
#include "coo_kernels.h"
#include "csr_kernels.h"
#include "nm_kernels.h"
#include "tiled_kernels.h"

namespace jsparse {
namespace {

int failures = 0;

void Expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
  }
}

// Runs each task on a thread of its own; joins them all at destruction. Splits work of any size
// (the test's matrices are far below kMinParallelWork), so that the split paths are checked.
class ThreadExecutor final : public Executor {
 public:
  explicit ThreadExecutor(int64_t workers) : workers_(workers) {}
  ~ThreadExecutor() override {
    for (auto& thread : threads_) thread.join();
  }
  int64_t num_workers() const override { return workers_; }
  void Schedule(std::function<void()> task) const override { threads_.emplace_back(task); }
  int64_t min_parallel_work() const override { return 0; }

 private:
  int64_t workers_;
  mutable std::vector<std::thread> threads_;
};

// A dense [rows, cols] float64 matrix with density `density`, as the kernels' storage.
struct Dense {
  int64_t rows, cols;
  std::vector<double> values;
  double at(int64_t r, int64_t c) const { return values[r * cols + c]; }
};

Dense RandomDense(std::mt19937& gen, int64_t rows, int64_t cols, double density) {
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  Dense dense{rows, cols, std::vector<double>(rows * cols, 0.0)};
  for (auto& v : dense.values) {
    if (uniform(gen) < density) v = (0.5 + uniform(gen)) * (uniform(gen) < 0.5 ? -1 : 1);
  }
  // A few empty rows.
  for (int64_t r = 0; r < rows; r += 7) {
    for (int64_t c = 0; c < cols; ++c) dense.values[r * cols + c] = 0;
  }
  return dense;
}

template <typename Value>
std::vector<typename Value::Storage> ToStorage(const std::vector<double>& values) {
  std::vector<typename Value::Storage> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = Value::Store(static_cast<float>(values[i]));
  return out;
}

// NaN-filled storage of `count` elements.
template <typename Value>
std::vector<typename Value::Storage> Poisoned(size_t count) {
  return std::vector<typename Value::Storage>(
      count, Value::Store(std::numeric_limits<float>::quiet_NaN()));
}

// Rounds values to Value's storage and back (what the kernel sees).
template <typename Value>
Dense Rounded(Dense dense) {
  for (auto& v : dense.values) v = Value::Load(Value::Store(static_cast<float>(v)));
  return dense;
}

template <typename Value>
void ExpectClose(const std::vector<typename Value::Storage>& actual,
                 const std::vector<double>& expected, const std::vector<double>& scale,
                 double rtol, const std::string& what) {
  bool ok = actual.size() == expected.size();
  for (size_t i = 0; ok && i < actual.size(); ++i) {
    const double got = Value::Load(actual[i]);
    ok = std::isfinite(got) && std::abs(got - expected[i]) <= rtol * scale[i] + 1e-300;
    if (!ok) std::fprintf(stderr, "  at %zu: got %g, expected %g\n", i, got, expected[i]);
  }
  Expect(ok, what);
}

// expected = op(A) @ B and the error scale |op(A)| @ |B|.
void DenseProduct(const Dense& a, bool transpose, const Dense& b, std::vector<double>* expected,
                  std::vector<double>* scale) {
  const int64_t out_rows = transpose ? a.cols : a.rows, inner = transpose ? a.rows : a.cols;
  expected->assign(out_rows * b.cols, 0.0);
  scale->assign(out_rows * b.cols, 0.0);
  for (int64_t i = 0; i < out_rows; ++i) {
    for (int64_t k = 0; k < inner; ++k) {
      const double value = transpose ? a.at(k, i) : a.at(i, k);
      for (int64_t j = 0; j < b.cols; ++j) {
        (*expected)[i * b.cols + j] += value * b.at(k, j);
        (*scale)[i * b.cols + j] += std::abs(value * b.at(k, j));
      }
    }
  }
}

template <typename Value, typename Index>
void TestCsrAndCoo(std::mt19937& gen, const Executor& executor, double rtol,
                   const std::string& label, int64_t n = 70) {
  const int64_t rows = 130, cols = 90, depth = 19, pad = 3;
  const Dense a = Rounded<Value>(RandomDense(gen, rows, cols, 0.3));
  const Dense b = Rounded<Value>(RandomDense(gen, std::max(rows, cols), n, 1.0));
  std::vector<double> values;
  std::vector<Index> col_indices, row_indices, row_offsets{0};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (a.at(r, c) != 0) {
        values.push_back(a.at(r, c));
        col_indices.push_back(static_cast<Index>(c));
        row_indices.push_back(static_cast<Index>(r));
      }
    }
    row_offsets.push_back(static_cast<Index>(values.size()));
  }
  const int64_t stored = values.size(), nse = stored + pad;
  for (int64_t p = 0; p < pad; ++p) {
    values.push_back(std::numeric_limits<double>::quiet_NaN());
    col_indices.push_back(static_cast<Index>(cols));  // CSR padding: never read.
    row_indices.push_back(static_cast<Index>(rows));  // COO padding is (rows, cols).
  }
  const auto data = ToStorage<Value>(values);
  for (bool transpose : {false, true}) {
    const int64_t in_rows = transpose ? rows : cols, out_rows = transpose ? cols : rows;
    Dense rhs{in_rows, n, std::vector<double>(b.values.begin(), b.values.begin() + in_rows * n)};
    const auto rhs_storage = ToStorage<Value>(rhs.values);
    std::vector<double> expected, scale;
    DenseProduct(a, transpose, rhs, &expected, &scale);
    auto out = Poisoned<Value>(out_rows * n);
    const auto csr = transpose ? CsrSpmmTransposed<Value, Index> : CsrSpmm<Value, Index>;
    Expect(csr(executor, data.data(), col_indices.data(), row_offsets.data(), rows, cols, nse,
               rhs_storage.data(), n, out.data()).empty(), label + " csr spmm ran");
    ExpectClose<Value>(out, expected, scale, rtol, label + " csr spmm transpose=" +
                       std::to_string(transpose));
    out = Poisoned<Value>(out_rows * n);
    Expect(CooSpmm<Value, Index>(executor, data.data(), row_indices.data(), col_indices.data(),
                                 nse, rows, cols, transpose, rhs_storage.data(), n,
                                 out.data()).empty(), label + " coo spmm ran");
    ExpectClose<Value>(out, expected, scale, rtol, label + " coo spmm transpose=" +
                       std::to_string(transpose));
    // The same entries (padding included) in random order: not sorted by row, so the scatter
    // path, with the same product.
    std::vector<int64_t> order(nse);
    for (int64_t p = 0; p < nse; ++p) order[p] = p;
    std::shuffle(order.begin(), order.end(), gen);
    std::vector<typename Value::Storage> shuffled_data(nse);
    std::vector<Index> shuffled_rows(nse), shuffled_cols(nse);
    for (int64_t p = 0; p < nse; ++p) {
      shuffled_data[p] = data[order[p]];
      shuffled_rows[p] = row_indices[order[p]];
      shuffled_cols[p] = col_indices[order[p]];
    }
    out = Poisoned<Value>(out_rows * n);
    Expect(CooSpmm<Value, Index>(executor, shuffled_data.data(), shuffled_rows.data(),
                                 shuffled_cols.data(), nse, rows, cols, transpose,
                                 rhs_storage.data(), n, out.data()).empty(),
           label + " shuffled coo spmm ran");
    ExpectClose<Value>(out, expected, scale, rtol, label + " shuffled coo spmm transpose=" +
                       std::to_string(transpose));
  }
  // SDDMM on the same pattern.
  const Dense x = Rounded<Value>(RandomDense(gen, rows, depth, 1.0));
  const Dense y = Rounded<Value>(RandomDense(gen, cols, depth, 1.0));
  const auto xs = ToStorage<Value>(x.values), ys = ToStorage<Value>(y.values);
  std::vector<double> expected(nse, 0.0), scale(nse, 0.0);
  for (int64_t p = 0; p < stored; ++p) {
    for (int64_t d = 0; d < depth; ++d) {
      expected[p] += x.at(row_indices[p], d) * y.at(col_indices[p], d);
      scale[p] += std::abs(x.at(row_indices[p], d) * y.at(col_indices[p], d));
    }
  }
  auto sampled = Poisoned<Value>(nse);
  Expect(CsrSddmm<Value, Index>(executor, col_indices.data(), row_offsets.data(), rows, cols, nse,
                                xs.data(), ys.data(), depth, sampled.data()).empty(),
         label + " csr sddmm ran");
  ExpectClose<Value>(sampled, expected, scale, rtol, label + " csr sddmm");
  sampled = Poisoned<Value>(nse);
  Expect(CooSddmm<Value, Index>(executor, row_indices.data(), col_indices.data(), nse, rows, cols,
                                xs.data(), ys.data(), depth, sampled.data()).empty(),
         label + " coo sddmm ran");
  ExpectClose<Value>(sampled, expected, scale, rtol, label + " coo sddmm");
}

template <typename Value, typename Index>
void TestBsr(std::mt19937& gen, const Executor& executor, double rtol, const std::string& label) {
  const BlockShape block{3, 2};
  const int64_t block_rows = 40, block_cols = 30, n = 37, depth = 9, pad = 2;
  Dense a{block_rows * block.rows, block_cols * block.cols, {}};
  a.values.assign(a.rows * a.cols, 0.0);
  std::vector<double> values;
  std::vector<Index> col_indices, row_offsets{0};
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t r = 0; r < block_rows; ++r) {
    for (int64_t c = 0; c < block_cols; ++c) {
      if (uniform(gen) > 0.25 || r % 5 == 0) continue;
      col_indices.push_back(static_cast<Index>(c));
      for (int64_t i = 0; i < block.rows; ++i) {
        for (int64_t j = 0; j < block.cols; ++j) {
          const double v = Value::Load(Value::Store(static_cast<float>(uniform(gen) - 0.5)));
          values.push_back(v);
          a.values[(r * block.rows + i) * a.cols + c * block.cols + j] = v;
        }
      }
    }
    row_offsets.push_back(static_cast<Index>(col_indices.size()));
  }
  const int64_t stored = col_indices.size(), nse = stored + pad;
  for (int64_t p = 0; p < pad; ++p) {
    col_indices.push_back(static_cast<Index>(-1));
    for (int64_t k = 0; k < block.rows * block.cols; ++k) values.push_back(NAN);
  }
  const auto data = ToStorage<Value>(values);
  for (bool transpose : {false, true}) {
    const int64_t in_rows = transpose ? a.rows : a.cols, out_rows = transpose ? a.cols : a.rows;
    const Dense rhs = Rounded<Value>(RandomDense(gen, in_rows, n, 1.0));
    const auto rhs_storage = ToStorage<Value>(rhs.values);
    std::vector<double> expected, scale;
    DenseProduct(a, transpose, rhs, &expected, &scale);
    auto out = Poisoned<Value>(out_rows * n);
    const auto bsr = transpose ? BsrSpmmTransposed<Value, Index> : BsrSpmm<Value, Index>;
    Expect(bsr(executor, data.data(), col_indices.data(), row_offsets.data(), block_rows,
               block_cols, block, nse, rhs_storage.data(), n, out.data()).empty(),
           label + " bsr spmm ran");
    ExpectClose<Value>(out, expected, scale, rtol, label + " bsr spmm transpose=" +
                       std::to_string(transpose));
  }
  const Dense x = Rounded<Value>(RandomDense(gen, a.rows, depth, 1.0));
  const Dense y = Rounded<Value>(RandomDense(gen, a.cols, depth, 1.0));
  const auto xs = ToStorage<Value>(x.values), ys = ToStorage<Value>(y.values);
  const int64_t size = block.rows * block.cols;
  std::vector<double> expected(nse * size, 0.0), scale(nse * size, 0.0);
  for (int64_t r = 0; r < block_rows; ++r) {
    for (int64_t p = row_offsets[r]; p < row_offsets[r + 1]; ++p) {
      for (int64_t i = 0; i < block.rows; ++i) {
        for (int64_t j = 0; j < block.cols; ++j) {
          for (int64_t d = 0; d < depth; ++d) {
            const double t = x.at(r * block.rows + i, d) * y.at(col_indices[p] * block.cols + j, d);
            expected[p * size + i * block.cols + j] += t;
            scale[p * size + i * block.cols + j] += std::abs(t);
          }
        }
      }
    }
  }
  auto sampled = Poisoned<Value>(nse * size);
  Expect(BsrSddmm<Value, Index>(executor, col_indices.data(), row_offsets.data(), block_rows,
                                block_cols, block, nse, xs.data(), ys.data(), depth,
                                sampled.data()).empty(), label + " bsr sddmm ran");
  ExpectClose<Value>(sampled, expected, scale, rtol, label + " bsr sddmm");
}

template <typename Value>
void TestNm(std::mt19937& gen, const Executor& executor, double rtol, const std::string& label) {
  const NmPattern pattern{2, 4};
  const int64_t rows = 90, groups = 20, n = 45, depth = 11, per_row = groups * pattern.n;
  Dense a{rows, groups * pattern.m, {}};
  a.values.assign(a.rows * a.cols, 0.0);
  std::vector<double> values;
  std::vector<uint8_t> indices;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const uint8_t first = gen() % 3, second = first + 1 + gen() % (3 - first);
      for (uint8_t position : {first, second}) {
        const double v = Value::Load(Value::Store(static_cast<float>(uniform(gen) - 0.5)));
        values.push_back(v);
        indices.push_back(position);
        a.values[r * a.cols + g * pattern.m + position] = v;
      }
    }
  }
  const auto data = ToStorage<Value>(values);
  for (bool transpose : {false, true}) {
    const int64_t in_rows = transpose ? a.rows : a.cols, out_rows = transpose ? a.cols : a.rows;
    const Dense rhs = Rounded<Value>(RandomDense(gen, in_rows, n, 1.0));
    const auto rhs_storage = ToStorage<Value>(rhs.values);
    std::vector<double> expected, scale;
    DenseProduct(a, transpose, rhs, &expected, &scale);
    auto out = Poisoned<Value>(out_rows * n);
    const auto nm = transpose ? NmSpmmTransposed<Value> : NmSpmm<Value>;
    Expect(nm(executor, data.data(), indices.data(), rows, groups, pattern, rhs_storage.data(), n,
              out.data()).empty(), label + " nm spmm ran");
    ExpectClose<Value>(out, expected, scale, rtol, label + " nm spmm transpose=" +
                       std::to_string(transpose));
  }
  const Dense x = Rounded<Value>(RandomDense(gen, rows, depth, 1.0));
  const Dense y = Rounded<Value>(RandomDense(gen, a.cols, depth, 1.0));
  const auto xs = ToStorage<Value>(x.values), ys = ToStorage<Value>(y.values);
  std::vector<double> expected(rows * per_row, 0.0), scale(rows * per_row, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t s = 0; s < per_row; ++s) {
      for (int64_t d = 0; d < depth; ++d) {
        const double t = x.at(r, d) * y.at(NmColumn(indices.data() + r * per_row, s, pattern), d);
        expected[r * per_row + s] += t;
        scale[r * per_row + s] += std::abs(t);
      }
    }
  }
  auto sampled = Poisoned<Value>(rows * per_row);
  Expect(NmSddmm<Value>(executor, indices.data(), rows, groups, pattern, xs.data(), ys.data(),
                        depth, sampled.data()).empty(), label + " nm sddmm ran");
  ExpectClose<Value>(sampled, expected, scale, rtol, label + " nm sddmm");
}

// Tiled SpMM: a ragged [45, 150] matrix in 16x64 tiles (a last partial tile each way, empty
// rows), its values followed by NaN padding that must never be read; 70 columns.
template <typename Value, typename Index>
void TestTiled(std::mt19937& gen, const Executor& executor, double rtol,
               const std::string& label) {
  const int64_t rows = 45, cols = 150, n = 70, tm = 16, words = 2, tk = 32 * words;
  const Dense a = Rounded<Value>(RandomDense(gen, rows, cols, 0.3));
  const TileGrid grid{(rows + tm - 1) / tm, (cols + tk - 1) / tk, tm, words};
  std::vector<uint32_t> bitmaps(grid.tile_rows * grid.tile_cols * tm * words, 0u);
  std::vector<Index> offsets(grid.tile_rows * grid.tile_cols * tm, 0);
  std::vector<double> values;
  for (int64_t i = 0; i < grid.tile_rows; ++i) {
    for (int64_t j = 0; j < grid.tile_cols; ++j) {
      for (int64_t r = 0; r < tm; ++r) {
        const int64_t index = (i * grid.tile_cols + j) * tm + r, row = i * tm + r;
        offsets[index] = static_cast<Index>(values.size());
        for (int64_t c = 0; c < tk && row < rows && j * tk + c < cols; ++c) {
          const double v = a.at(row, j * tk + c);
          if (v == 0.0) continue;
          bitmaps[index * words + c / 32] |= 1u << (c % 32);
          values.push_back(v);
        }
      }
    }
  }
  auto data = ToStorage<Value>(values);
  for (int p = 0; p < 5; ++p) data.push_back(Value::Store(std::numeric_limits<float>::quiet_NaN()));
  const Dense rhs = Rounded<Value>(RandomDense(gen, cols, n, 1.0));
  const auto rhs_storage = ToStorage<Value>(rhs.values);
  std::vector<double> expected, scale;
  DenseProduct(a, false, rhs, &expected, &scale);
  auto out = Poisoned<Value>(rows * n);
  Expect(TiledSpmm<Value, Index>(executor, data.data(), bitmaps.data(), offsets.data(), rows,
                                 cols, static_cast<int64_t>(data.size()), grid,
                                 rhs_storage.data(), n, out.data()).empty(),
         label + " tiled spmm ran");
  ExpectClose<Value>(out, expected, scale, rtol, label + " tiled spmm");
}

// Runs a CsrSpmm call as one chunk on the calling thread, however large.
struct OneChunkExecutor final : Executor {
  int64_t min_parallel_work() const override { return std::numeric_limits<int64_t>::max(); }
};

// CSR SpMM with K wider than several tiles, so that the K-tiled path runs (a last partial tile,
// empty rows, panels plus a scalar tail at N = 70), and again with the columns of every row
// shuffled, which must take the untiled path and give the same product. Twice: L1 tiles (a B of
// a few kL1TileBytes, dense rows) and L2 tiles (a B over kMaxL1TiledRhsBytes, sparser rows);
// CsrKTile must pick the tile the case is for. `streamed`: enough rows, run as one chunk, that
// the chunk is streamed (CsrChunkStreamed: prefetched runs, indices checked run by run, the
// bad-index and out-of-order cases below through its checks).
template <typename Value, typename Index>
void TestCsrTiled(std::mt19937& gen, const Executor& given_executor, double rtol,
                  const std::string& given_label, bool l1, int64_t n = 70, bool streamed = false) {
  using Storage = typename Value::Storage;
  const OneChunkExecutor one_chunk;
  const Executor& executor = streamed ? one_chunk : given_executor;
  const std::string label = given_label + (streamed ? " streamed" : "");
  const int64_t rows = streamed ? (l1 ? 512 : 128) : 37, row_bytes = n * sizeof(Storage);
  const int64_t cols = (l1 ? 3 * kL1TileBytes : 5 * kTileBytes) / row_bytes + 61;
  // Dense enough that a row's run of terms in a tile repays tiling (kMinL1TileRunWork,
  // kMinTileRunWork): an L2 run's work scales with N, so narrower rows are denser (0.2 at N = 70;
  // at N = 16 float64 with int64 indices 0.2 gives runs of ~3400 multiply-adds: untiled).
  // Streamed L2 chunks (more rows, so more entries a column) are denser, to keep runs as long.
  const double density =
      l1 ? 0.8 : std::min(0.9, (streamed ? 0.5 : 0.2) * 70 / static_cast<double>(n));
  const Dense a = Rounded<Value>(RandomDense(gen, rows, cols, density));
  const Dense b = Rounded<Value>(RandomDense(gen, cols, n, 1.0));
  std::vector<double> expected, scale;
  DenseProduct(a, false, b, &expected, &scale);
  std::vector<double> values;
  std::vector<Index> col_indices, row_offsets{0};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (a.at(r, c) != 0) {
        values.push_back(a.at(r, c));
        col_indices.push_back(static_cast<Index>(c));
      }
    }
    row_offsets.push_back(static_cast<Index>(values.size()));
  }
  const auto rhs = ToStorage<Value>(b.values);
  const int64_t tile = CsrKTile(cols, n, sizeof(Storage), sizeof(Storage) + sizeof(Index),
                                static_cast<int64_t>(values.size()), rows);
  const int64_t l1_tile = kL1TileBytes / row_bytes;
  Expect(l1 ? tile == l1_tile : tile > l1_tile && tile < cols,
         label + " csr K tile " + std::to_string(tile) + (l1 ? " is L1's " : " is an L2 tile, not ") +
             std::to_string(l1_tile));
  if (streamed) {
    Expect(CsrChunkStreamed(static_cast<int64_t>(values.size()), sizeof(Storage) + sizeof(Index)),
           label + " csr chunk streamed, " + std::to_string(values.size()) + " entries");
  }
  // A bad index (negative, at or past K; first, last or mid-row) in a matrix of the tiled shape
  // gives the bad column's message and is not read through (the sanitizer build checks that);
  // one row out of order (its first and last terms swapped) sends its chunk untiled, with the
  // right product.
  {
    const auto data = ToStorage<Value>(values);
    auto run = [&](const std::vector<Index>& cols_in, std::vector<Storage>* out) {
      return CsrSpmm<Value, Index>(executor, data.data(), cols_in.data(), row_offsets.data(), rows,
                                   cols, values.size(), rhs.data(), n, out->data());
    };
    struct Bad {
      int64_t pos;
      int64_t value;
      const char* what;
    };
    const int64_t last = static_cast<int64_t>(row_offsets[rows]) - 1;
    const int64_t middle = (row_offsets[3] + row_offsets[4]) / 2;
    const int64_t largest = static_cast<int64_t>(std::numeric_limits<Index>::max());
    for (const Bad& bad : {Bad{0, -1, "first index -1"}, Bad{last, cols, "last index = cols"},
                           Bad{middle, cols + 5, "middle index past cols"},
                           Bad{middle, -7, "middle index -7"},
                           Bad{last, largest, "last index the largest Index"},
                           Bad{middle, largest, "middle index the largest Index"}}) {
      std::vector<Index> broken = col_indices;
      broken[bad.pos] = static_cast<Index>(bad.value);
      auto out = Poisoned<Value>(rows * n);
      const std::string message = run(broken, &out);
      const std::string want = "col_indices[" + std::to_string(bad.pos) + "] = " +
                               std::to_string(bad.value);
      Expect(message.find(want) != std::string::npos,
             label + " csr spmm tiled, " + bad.what + ": got '" + message + "'");
    }
    std::vector<Index> swapped = col_indices;
    std::vector<double> swapped_values = values;
    const int64_t first = row_offsets[5], end = row_offsets[6] - 1;
    std::swap(swapped[first], swapped[end]);
    std::swap(swapped_values[first], swapped_values[end]);
    const auto swapped_data = ToStorage<Value>(swapped_values);
    auto out = Poisoned<Value>(rows * n);
    Expect(CsrSpmm<Value, Index>(executor, swapped_data.data(), swapped.data(), row_offsets.data(),
                                 rows, cols, values.size(), rhs.data(), n, out.data()).empty(),
           label + " csr spmm tiled, one row's ends swapped, ran");
    ExpectClose<Value>(out, expected, scale, rtol,
                       label + " csr spmm tiled, one row's ends swapped, l1=" + std::to_string(l1));
    // Two neighbouring terms of a row swapped (out of order within one K tile): the run checks
    // of the tiled loop accept them, and the product is the same.
    std::vector<Index> neighbours = col_indices;
    std::vector<double> neighbour_values = values;
    const int64_t at = row_offsets[7] + 1;
    std::swap(neighbours[at], neighbours[at + 1]);
    std::swap(neighbour_values[at], neighbour_values[at + 1]);
    const auto neighbour_data = ToStorage<Value>(neighbour_values);
    auto out2 = Poisoned<Value>(rows * n);
    Expect(CsrSpmm<Value, Index>(executor, neighbour_data.data(), neighbours.data(),
                                 row_offsets.data(), rows, cols, values.size(), rhs.data(), n,
                                 out2.data()).empty(),
           label + " csr spmm tiled, two neighbours swapped, ran");
    ExpectClose<Value>(out2, expected, scale, rtol,
                       label + " csr spmm tiled, two neighbours swapped, l1=" + std::to_string(l1));
  }
  for (bool shuffled : {false, true}) {
    if (shuffled) {
      for (int64_t r = 0; r < rows; ++r) {
        std::vector<std::pair<Index, double>> entries;
        for (Index p = row_offsets[r]; p < row_offsets[r + 1]; ++p) {
          entries.emplace_back(col_indices[p], values[p]);
        }
        std::shuffle(entries.begin(), entries.end(), gen);
        for (size_t i = 0; i < entries.size(); ++i) {
          col_indices[row_offsets[r] + i] = entries[i].first;
          values[row_offsets[r] + i] = entries[i].second;
        }
      }
    }
    const auto data = ToStorage<Value>(values);
    auto out = Poisoned<Value>(rows * n);
    Expect(CsrSpmm<Value, Index>(executor, data.data(), col_indices.data(), row_offsets.data(),
                                 rows, cols, values.size(), rhs.data(), n, out.data()).empty(),
           label + " csr spmm tiled ran, l1=" + std::to_string(l1));
    ExpectClose<Value>(out, expected, scale, rtol,
                       label + " csr spmm K-tiled, l1=" + std::to_string(l1) + " shuffled=" + std::to_string(shuffled));
  }
}

// CsrNumChunks: fewer chunks only where they run K-tiled and would each read B few times over.
void TestCsrNumChunks() {
  struct Workers final : Executor {
    int64_t num_workers() const override { return 1; }
  } two_threads;
  // 512 x 2048 at s = 0.7, N = 128 float32 (L1 tiles): B read 153 times over in all, so 9 chunks
  // instead of 32.
  const int64_t entries = 314768, work = entries * 128 + 512;
  Expect(NumChunks(two_threads, work) == 32, "csr chunks: NumChunks gives 32");
  Expect(CsrNumChunks(two_threads, work, entries, 512, 2048, 128, 4, 8) == 9,
         "csr chunks: 512 x 2048 N = 128 takes 9");
  // 4096 x 4096 at s = 0.7, N = 32: B read 1229 times over, 32 chunks kept.
  const int64_t big = 5032940;
  Expect(CsrNumChunks(two_threads, big * 32 + 4096, big, 4096, 4096, 32, 4, 8) == 32,
         "csr chunks: 4096 x 4096 N = 32 keeps 32");
  // Untiled (s = 0.98, N = 32, B in L2): NumChunks' count.
  const int64_t sparse = 20972;
  Expect(CsrNumChunks(two_threads, sparse * 32 + 512, sparse, 512, 2048, 32, 4, 8) ==
             NumChunks(two_threads, sparse * 32 + 512),
         "csr chunks: untiled keeps NumChunks'");
  // Never fewer than 2 a thread: 64 x 2048 rows of 1400 terms, N = 128 (B read 43 times over).
  const int64_t few = 64 * 1400;
  Expect(CsrNumChunks(two_threads, few * 128 + 64, few, 64, 2048, 128, 4, 8) == 4,
         "csr chunks: at least 2 a thread");
}

// Bad structure: each kernel returns a message naming the argument and reads nothing out of
// bounds (the sanitizer build checks the latter).
void TestInvalidStructure(const Executor& executor) {
  using F = NativeValue<float>;
  const std::vector<float> data(4, 1.0f), rhs(5 * 3, 1.0f), x(2 * 3, 1.0f), y(4 * 3, 1.0f);
  std::vector<float> out(5 * 3), values(4);
  const std::vector<int32_t> bad_cols{0, 1, 9, 2}, offsets{0, 2, 4};
  const std::vector<int32_t> cols{0, 1, 2, 3}, decreasing{0, 3, 2}, too_far{0, 2, 7};
  auto contains = [](const std::string& s, const char* part) {
    return s.find(part) != std::string::npos;
  };
  Expect(contains(CsrSpmm<F, int32_t>(executor, data.data(), bad_cols.data(), offsets.data(), 2, 4,
                                      4, rhs.data(), 3, out.data()), "col_indices[2] = 9"),
         "csr spmm bad column");
  Expect(contains(CsrSpmmTransposed<F, int32_t>(executor, data.data(), bad_cols.data(),
                                                offsets.data(), 2, 4, 4, rhs.data(), 3,
                                                out.data()), "col_indices[2] = 9"),
         "csr spmm transposed bad column");
  Expect(contains(CsrSpmm<F, int32_t>(executor, data.data(), cols.data(), decreasing.data(), 2, 4,
                                      4, rhs.data(), 3, out.data()), "non-decreasing"),
         "csr spmm decreasing offsets");
  Expect(contains(CsrSddmm<F, int32_t>(executor, cols.data(), too_far.data(), 2, 4, 4, x.data(),
                                       y.data(), 3, values.data()), "exceeds nse"),
         "csr sddmm offsets past nse");
  const std::vector<int64_t> rows64{0, 1, 5, 1}, cols64{0, 1, 2, 3};
  Expect(contains(CooSpmm<F, int64_t>(executor, data.data(), rows64.data(), cols64.data(), 4, 2, 4,
                                      false, rhs.data(), 3, out.data()), "entry 2"),
         "coo spmm bad row");
  Expect(contains(CooSddmm<F, int64_t>(executor, rows64.data(), cols64.data(), 4, 2, 4, x.data(),
                                       y.data(), 3, values.data()), "entry 2"),
         "coo sddmm bad row");
  const std::vector<int32_t> block_cols{0, 3}, block_offsets{0, 1, 2};
  std::vector<float> block_data(2 * 1 * 2, 1.0f), block_out(2 * 3);
  Expect(contains(BsrSpmm<F, int32_t>(executor, block_data.data(), block_cols.data(),
                                      block_offsets.data(), 2, 2, BlockShape{1, 2}, 2, rhs.data(),
                                      3, block_out.data()), "col_indices[1] = 3"),
         "bsr spmm bad block column");
  const std::vector<uint8_t> nm_indices{0, 1, 2, 7};
  const std::vector<float> nm_data(4, 1.0f), nm_rhs(4 * 3, 1.0f);
  std::vector<float> nm_out(2 * 3);
  Expect(contains(NmSpmm<F>(executor, nm_data.data(), nm_indices.data(), 2, 1, NmPattern{2, 4},
                            nm_rhs.data(), 3, nm_out.data()), "indices[1, 1] = 7"),
         "nm spmm bad index");
  // One 2x32 tile over a [2, 20] matrix: a bit at column 25, then a row running past nse.
  const TileGrid grid{1, 1, 2, 1};
  const std::vector<uint32_t> past_k{1u << 25, 0u}, past_nse{0u, 0b111u};
  const std::vector<int32_t> tile_offsets{0, 2};
  std::vector<float> tiled_rhs(20 * 3, 1.0f), tiled_out(2 * 3);
  Expect(contains(TiledSpmm<F, int32_t>(executor, data.data(), past_k.data(), tile_offsets.data(),
                                        2, 20, 4, grid, tiled_rhs.data(), 3, tiled_out.data()),
                  "bitmaps[0, 0, 0] marks a column at or past K = 20"),
         "tiled spmm bit past K");
  Expect(contains(TiledSpmm<F, int32_t>(executor, data.data(), past_nse.data(),
                                        tile_offsets.data(), 2, 20, 4, grid, tiled_rhs.data(), 3,
                                        tiled_out.data()),
                  "row_offsets[0, 0, 1] = 2: the tile row's values run outside data"),
         "tiled spmm values past nse");
}

template <typename Value>
void TestAll(const char* name, double rtol) {
  std::mt19937 gen(1234);
  Executor serial;
  ThreadExecutor threads(3);
  for (const Executor* executor : {static_cast<const Executor*>(&serial),
                                   static_cast<const Executor*>(&threads)}) {
    const std::string label = std::string(name) + (executor == &serial ? " serial" : " threads");
    TestCsrAndCoo<Value, int32_t>(gen, *executor, rtol, label + " int32");
    TestCsrAndCoo<Value, int64_t>(gen, *executor, rtol, label + " int64");
    for (bool l1 : {true, false}) {
      TestCsrTiled<Value, int32_t>(gen, *executor, rtol, label + " int32", l1);
      TestCsrTiled<Value, int64_t>(gen, *executor, rtol, label + " int64", l1);
    }
    // Rows of exactly four 32-byte vectors (N = 32 float32, 16 float64) take CsrRowPairs, untiled
    // and tiled; bfloat16 at the same N keeps the general loop.
    const int64_t four = 4 * Vector32<typename Value::Accum>::kLanes;
    const std::string at_four = " n=" + std::to_string(four);
    TestCsrAndCoo<Value, int32_t>(gen, *executor, rtol, label + " int32" + at_four, four);
    for (bool l1 : {true, false}) {
      TestCsrTiled<Value, int64_t>(gen, *executor, rtol, label + " int64" + at_four, l1, four);
    }
    TestBsr<Value, int32_t>(gen, *executor, rtol, label);
    if (executor == &serial) {
      // Streamed K-tiled chunks (one chunk of 1.5-4 MB of entries); L2 tiles at N = 70 only
      // (at N = 16-32 a streamed chunk's runs in an L2 tile are too short for tiles).
      for (bool l1 : {true, false}) {
        TestCsrTiled<Value, int32_t>(gen, serial, rtol, label + " int32", l1, 70, true);
        TestCsrTiled<Value, int64_t>(gen, serial, rtol, label + " int64", l1, 70, true);
      }
      TestCsrTiled<Value, int64_t>(gen, serial, rtol, label + " int64" + at_four, true, four, true);
    }
    TestNm<Value>(gen, *executor, rtol, label);
    TestTiled<Value, int32_t>(gen, *executor, rtol, label + " int32");
    TestTiled<Value, int64_t>(gen, *executor, rtol, label + " int64");
    TestInvalidStructure(*executor);
  }
}

}  // namespace
}  // namespace jsparse

int main() {
  jsparse::TestCsrNumChunks();
  jsparse::TestAll<jsparse::NativeValue<float>>("float32", 2e-6);
  jsparse::TestAll<jsparse::NativeValue<double>>("float64", 1e-12);
  jsparse::TestAll<jsparse::BFloat16Value>("bfloat16", 8e-3);
  std::printf(jsparse::failures ? "%d checks failed\n" : "all kernel checks passed\n",
              jsparse::failures);
  return jsparse::failures ? 1 : 0;
}
