// XLA FFI handler of the tiled (bitmap) SpMM (loop nest in tiled_kernels.h):
//   jsparse_tiled_spmm(data [nse], bitmaps uint32 [Mt, Kt, tm, tk / 32], row_offsets
//     [Mt, Kt, tm], B [K, N]) -> out [M, N] = A @ B. Attribute transpose: must be false (A.T @ B
//     for gradients runs the reference lowering).
// Values float32, float64 or bfloat16 (one dtype for data, B and out); row_offsets int32 or
// int64. SpMV is SpMM with N = 1.

#include <cstdint>
#include <string>

#include "ffi_support.h"
#include "tiled_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {
namespace {

ffi::Error TiledSpmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer data, ffi::AnyBuffer bitmaps,
                            ffi::AnyBuffer row_offsets, ffi::AnyBuffer rhs,
                            ffi::Result<ffi::AnyBuffer> out, bool transpose) {
  ArgumentChecks checks("jsparse_tiled_spmm");
  checks.Require(!transpose, "transpose is not supported (A.T @ B runs the reference lowering)")
      .Shape("data", data, {-1}).Shape("bitmaps", bitmaps, {-1, -1, -1, -1})
      .Shape("row_offsets", row_offsets, {-1, -1, -1}).Shape("B", rhs, {-1, -1})
      .Shape("out", *out, {-1, -1});
  if (!checks.ok()) return checks.error();
  const auto grid_dims = bitmaps.dimensions();
  const TileGrid grid{grid_dims[0], grid_dims[1], grid_dims[2], grid_dims[3]};
  const int64_t rows = out->dimensions()[0], cols = rhs.dimensions()[0];
  const int64_t n = rhs.dimensions()[1];
  checks.Require(bitmaps.element_type() == ffi::DataType::U32,
                 std::string("bitmaps must be uint32, got ") +
                     DtypeName(bitmaps.element_type()))
      .Require(grid.tm >= 1 && grid.words >= 1, "bitmaps' tile shape must be at least 1 x 32")
      .Shape("bitmaps", bitmaps,
             {grid.tm >= 1 ? (rows + grid.tm - 1) / grid.tm : -1,
              grid.words >= 1 ? (cols + 32 * grid.words - 1) / (32 * grid.words) : -1, grid.tm,
              grid.words})
      .Shape("row_offsets", row_offsets, {grid.tile_rows, grid.tile_cols, grid.tm})
      .Shape("out", *out, {rows, n})
      .SameDtype("B", rhs, "data", data.element_type())
      .SameDtype("out", *out, "data", data.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("data", data.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("row_offsets", row_offsets.element_type(), [&](auto index) {
      using Index = decltype(index);
      return ArgumentChecks::Fail(
          "jsparse_tiled_spmm",
          TiledSpmm<Value, Index>(executor, DataOf<Storage>(data), DataOf<uint32_t>(bitmaps),
                                  DataOf<Index>(row_offsets), rows, cols,
                                  static_cast<int64_t>(data.element_count()), grid,
                                  DataOf<Storage>(rhs), n, DataOf<Storage>(out)));
    });
  });
}

}  // namespace
}  // namespace jsparse

namespace ffi = xla::ffi;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseTiledSpmm, jsparse::TiledSpmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // bitmaps
                                  .Arg<ffi::AnyBuffer>()  // row_offsets
                                  .Arg<ffi::AnyBuffer>()  // B
                                  .Ret<ffi::AnyBuffer>()  // out
                                  .Attr<bool>("transpose"));
