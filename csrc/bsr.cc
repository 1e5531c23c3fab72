// XLA FFI handlers of the BSR kernels (loop nests in bsr_kernels.h):
//   jsparse_bsr_spmm(data [nse, bm, bk], col_indices [nse], row_offsets [M / bm + 1], B) -> out,
//     attribute transpose: out [M, N] = A @ B for B [K, N], or out [K, N] = A.T @ B for B [M, N].
//   jsparse_bsr_sddmm(col_indices [nse], row_offsets [M / bm + 1], X [M, D], Y [K, D])
//     -> values [nse, bm, bk].
// Values float32, float64 or bfloat16; indices int32 or int64 (one dtype for both).

#include <cstdint>
#include <string>

#include "bsr_kernels.h"
#include "ffi_support.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {
namespace {

std::string BlockMultipleMessage(const char* what, int64_t size, int64_t block) {
  return std::string(what) + " = " + std::to_string(size) + " is not a multiple of the block size " +
         std::to_string(block);
}

ffi::Error BsrSpmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer data, ffi::AnyBuffer col_indices,
                          ffi::AnyBuffer row_offsets, ffi::AnyBuffer rhs,
                          ffi::Result<ffi::AnyBuffer> out, bool transpose) {
  ArgumentChecks checks("jsparse_bsr_spmm");
  checks.Shape("data", data, {-1, -1, -1}).Shape("row_offsets", row_offsets, {-1})
      .Shape("B", rhs, {-1, -1}).Shape("out", *out, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = data.dimensions()[0];
  const BlockShape block{data.dimensions()[1], data.dimensions()[2]};
  const int64_t block_rows = static_cast<int64_t>(row_offsets.element_count()) - 1;
  const int64_t n = rhs.dimensions()[1];
  const int64_t cols = transpose ? out->dimensions()[0] : rhs.dimensions()[0];
  checks.Require(block.rows > 0 && block.cols > 0, "data blocks must not be empty")
      .Require(block_rows >= 0, "row_offsets must have M / bm + 1 >= 1 entries, got 0")
      .Require(block.cols == 0 || cols % block.cols == 0, BlockMultipleMessage("K", cols, block.cols))
      .Shape("col_indices", col_indices, {nse})
      .Shape("B", rhs, {transpose ? block_rows * block.rows : cols, n})
      .Shape("out", *out, {transpose ? cols : block_rows * block.rows, n})
      .SameDtype("B", rhs, "data", data.element_type())
      .SameDtype("out", *out, "data", data.element_type())
      .SameDtype("row_offsets", row_offsets, "col_indices", col_indices.element_type());
  if (!checks.ok()) return checks.error();
  const int64_t block_cols = cols / block.cols;
  FfiExecutor executor(pool);
  return WithValueType("data", data.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("col_indices", col_indices.element_type(), [&](auto index) {
      using Index = decltype(index);
      auto kernel = transpose ? BsrSpmmTransposed<Value, Index> : BsrSpmm<Value, Index>;
      return ArgumentChecks::Fail(
          "jsparse_bsr_spmm",
          kernel(executor, DataOf<Storage>(data), DataOf<Index>(col_indices),
                 DataOf<Index>(row_offsets), block_rows, block_cols, block, nse,
                 DataOf<Storage>(rhs), n, DataOf<Storage>(out)));
    });
  });
}

ffi::Error BsrSddmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer col_indices,
                           ffi::AnyBuffer row_offsets, ffi::AnyBuffer x, ffi::AnyBuffer y,
                           ffi::Result<ffi::AnyBuffer> values) {
  ArgumentChecks checks("jsparse_bsr_sddmm");
  checks.Shape("col_indices", col_indices, {-1}).Shape("row_offsets", row_offsets, {-1})
      .Shape("X", x, {-1, -1}).Shape("Y", y, {-1, -1}).Shape("values", *values, {-1, -1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = col_indices.element_count();
  const BlockShape block{values->dimensions()[1], values->dimensions()[2]};
  const int64_t block_rows = static_cast<int64_t>(row_offsets.element_count()) - 1;
  const int64_t cols = y.dimensions()[0], depth = x.dimensions()[1];
  checks.Require(block.rows > 0 && block.cols > 0, "values blocks must not be empty")
      .Require(block_rows >= 0, "row_offsets must have M / bm + 1 >= 1 entries, got 0")
      .Require(block.cols == 0 || cols % block.cols == 0, BlockMultipleMessage("K", cols, block.cols))
      .Shape("X", x, {block_rows * block.rows, depth}).Shape("Y", y, {cols, depth})
      .Shape("values", *values, {nse, block.rows, block.cols})
      .SameDtype("Y", y, "X", x.element_type()).SameDtype("values", *values, "X", x.element_type())
      .SameDtype("row_offsets", row_offsets, "col_indices", col_indices.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("X", x.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("col_indices", col_indices.element_type(), [&](auto index) {
      using Index = decltype(index);
      return ArgumentChecks::Fail(
          "jsparse_bsr_sddmm",
          BsrSddmm<Value, Index>(executor, DataOf<Index>(col_indices), DataOf<Index>(row_offsets),
                                 block_rows, cols / block.cols, block, nse, DataOf<Storage>(x),
                                 DataOf<Storage>(y), depth, DataOf<Storage>(values)));
    });
  });
}

}  // namespace
}  // namespace jsparse

namespace ffi = xla::ffi;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseBsrSpmm, jsparse::BsrSpmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // row_offsets
                                  .Arg<ffi::AnyBuffer>()  // B
                                  .Ret<ffi::AnyBuffer>()  // out
                                  .Attr<bool>("transpose"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseBsrSddmm, jsparse::BsrSddmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // row_offsets
                                  .Arg<ffi::AnyBuffer>()  // X
                                  .Arg<ffi::AnyBuffer>()  // Y
                                  .Ret<ffi::AnyBuffer>());  // values
