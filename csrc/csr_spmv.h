// CSR sparse matrix-vector product y = A @ x: the loop nest, free of XLA.
//
// The handler in csr_spmv.cc only unpacks buffers and turns the message returned here into an
// ffi::Error; a C++ test, a fuzzer or a sanitizer build can call CsrSpmv directly.

#ifndef JSPARSE_CSRC_CSR_SPMV_H_
#define JSPARSE_CSRC_CSR_SPMV_H_

#include <cstdint>
#include <cstring>
#include <string>

namespace jsparse {

// How a value type is stored and accumulated. Types whose storage is their arithmetic type
// (float, double) accumulate in themselves, as XLA's own dot does.
template <typename T>
struct NativeValue {
  using Storage = T;
  using Accum = T;
  static Accum Load(Storage value) { return value; }
  static Storage Store(Accum value) { return value; }
};

// bfloat16 held as its 16 raw bits (what XLA FFI hands over for BF16), accumulated in float32.
struct BFloat16Value {
  using Storage = uint16_t;
  using Accum = float;

  static Accum Load(Storage bits) {
    const uint32_t wide = static_cast<uint32_t>(bits) << 16;
    float value;
    std::memcpy(&value, &wide, sizeof(value));
    return value;
  }

  // Rounds to nearest, ties to even; NaNs stay NaNs (quieted), overflow rounds to infinity.
  static Storage Store(Accum value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      return static_cast<Storage>((bits >> 16) | 0x0040u);
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<Storage>(bits >> 16);
  }
};

// Checks that row_offsets describe rows inside [0, nse): row_offsets[0] == 0, non-decreasing,
// row_offsets[rows] <= nse. Returns "" when they do, else a message naming the first offending
// position. Reads exactly rows + 1 entries.
template <typename Index>
std::string CheckCsrRowOffsets(const Index* row_offsets, int64_t rows, int64_t nse) {
  if (row_offsets[0] != 0) {
    return "row_offsets[0] must be 0, got " + std::to_string(row_offsets[0]);
  }
  for (int64_t row = 1; row <= rows; ++row) {
    if (row_offsets[row] < row_offsets[row - 1]) {
      return "row_offsets must be non-decreasing, but row_offsets[" + std::to_string(row) +
             "] = " + std::to_string(row_offsets[row]) + " < row_offsets[" +
             std::to_string(row - 1) + "] = " + std::to_string(row_offsets[row - 1]);
    }
  }
  if (row_offsets[rows] > nse) {
    return "row_offsets[" + std::to_string(rows) + "] = " + std::to_string(row_offsets[rows]) +
           " exceeds nse = " + std::to_string(nse) + " (the length of data and col_indices)";
  }
  return "";
}

// y[row] = sum(data[p] * x[col_indices[p]] for p in [row_offsets[row], row_offsets[row + 1])).
//
// Args (Storage is Value::Storage):
//   data: [nse] values; col_indices: [nse] column of each value; row_offsets: [rows + 1];
//   x: [cols]; y: [rows], written.
// Entries at positions >= row_offsets[rows] are padding and never read. Safe on any input: it
// validates row_offsets first and each column index before use, and returns "" on success or a
// message naming the argument and first offending position (y is then partly written).
template <typename Value, typename Index>
std::string CsrSpmv(const typename Value::Storage* data, const Index* col_indices,
                    const Index* row_offsets, int64_t rows, int64_t cols, int64_t nse,
                    const typename Value::Storage* x, typename Value::Storage* y) {
  std::string error = CheckCsrRowOffsets(row_offsets, rows, nse);
  if (!error.empty()) return error;
  for (int64_t row = 0; row < rows; ++row) {
    typename Value::Accum sum = 0;
    for (int64_t pos = row_offsets[row]; pos < row_offsets[row + 1]; ++pos) {
      const int64_t col = col_indices[pos];
      // Rows are visited in order and row_offsets is monotone, so positions are visited in
      // increasing order and the first bad index met is the first one in col_indices.
      if (col < 0 || col >= cols) {
        return "col_indices[" + std::to_string(pos) + "] = " + std::to_string(col) +
               " is out of range [0, K) with K = " + std::to_string(cols) + " (the length of x)";
      }
      sum += Value::Load(data[pos]) * Value::Load(x[col]);
    }
    y[row] = Value::Store(sum);
  }
  return "";
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_CSR_SPMV_H_
