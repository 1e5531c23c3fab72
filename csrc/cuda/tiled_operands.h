// The checks of a jsparse.Tiled weight's buffers (16x64 tiles) that the CUDA handlers of its
// products share: sparse_mma_ffi.cu's TiledMatmulImpl (tensor cores) and tiled_gemv_ffi.cu's
// TiledGemvImpl (CUDA cores). Python checks the same first (jsparse._gpu.sparse_mma.
// check_tiled_product); these guard direct calls of the FFI targets.

#ifndef JSPARSE_CSRC_CUDA_TILED_OPERANDS_H_
#define JSPARSE_CSRC_CUDA_TILED_OPERANDS_H_

#include <cstdint>
#include <string>

#include "xla/ffi/api/ffi.h"

namespace jsparse_tiled {

// The kernels' offsets into data and bitmaps are 32-bit (a place may run up to 1024 past the
// last element).
inline constexpr int64_t kMaxElements = (int64_t{1} << 31) - 1024;

// What is wrong with a Tiled [m, k] weight's buffers for x of dtype ``dtype``, or "" when
// nothing is: data of x's dtype with fewer than kMaxElements values; bitmaps uint32
// [ceil(m / 16), ceil(k / 64), 16, 2], fewer than kMaxElements words; row_offsets int32,
// ceil(m / 16) * ceil(k / 64) * 16 of them.
inline std::string WeightProblem(const xla::ffi::AnyBuffer& data,
                                 const xla::ffi::AnyBuffer& bitmaps,
                                 const xla::ffi::AnyBuffer& row_offsets,
                                 xla::ffi::DataType dtype, int64_t m, int64_t k) {
  using xla::ffi::DataType;
  if (data.element_type() != dtype) return "data must have x's dtype";
  if (bitmaps.element_type() != DataType::U32 || row_offsets.element_type() != DataType::S32)
    return "bitmaps must be uint32 and row_offsets int32";
  if (static_cast<int64_t>(data.element_count()) > kMaxElements ||
      static_cast<int64_t>(bitmaps.element_count()) > kMaxElements)
    return "data and bitmaps must each hold fewer than 2^31 - 1024 elements";
  const int64_t row_tiles = (m + 15) / 16, k_tiles = (k + 63) / 64;
  const auto dims = bitmaps.dimensions();
  if (dims.size() != 4 || dims[0] != row_tiles || dims[1] != k_tiles || dims[2] != 16 ||
      dims[3] != 2)
    return "bitmaps must be [ceil(M / 16), ceil(K / 64), 16, 2] (16x64 tiles)";
  if (static_cast<int64_t>(row_offsets.element_count()) != row_tiles * k_tiles * 16)
    return "row_offsets must be [ceil(M / 16), ceil(K / 64), 16]";
  return "";
}

}  // namespace jsparse_tiled

#endif  // JSPARSE_CSRC_CUDA_TILED_OPERANDS_H_
