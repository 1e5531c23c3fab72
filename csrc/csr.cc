// XLA FFI handlers of the CSR kernels (loop nests in csr_kernels.h):
//   jsparse_csr_spmm(data [nse], col_indices [nse], row_offsets [M + 1], B) -> out, attribute
//     transpose: out [M, N] = A @ B for B [K, N], or out [K, N] = A.T @ B for B [M, N].
//   jsparse_csr_sddmm(col_indices [nse], row_offsets [M + 1], X [M, D], Y [K, D]) -> values [nse].
// Values float32, float64 or bfloat16 (one dtype for data, B and out; X, Y and values); indices
// int32 or int64 (one dtype for both index arrays). SpMV is SpMM with N = 1.

#include <cstdint>
#include <string>

#include "csr_kernels.h"
#include "ffi_support.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {
namespace {

ffi::Error CsrSpmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer data, ffi::AnyBuffer col_indices,
                          ffi::AnyBuffer row_offsets, ffi::AnyBuffer rhs,
                          ffi::Result<ffi::AnyBuffer> out, bool transpose) {
  ArgumentChecks checks("jsparse_csr_spmm");
  checks.Shape("data", data, {-1}).Shape("col_indices", col_indices, {-1})
      .Shape("row_offsets", row_offsets, {-1}).Shape("B", rhs, {-1, -1})
      .Shape("out", *out, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = data.element_count();
  const int64_t rows = static_cast<int64_t>(row_offsets.element_count()) - 1;
  const int64_t n = rhs.dimensions()[1];
  const int64_t cols = transpose ? out->dimensions()[0] : rhs.dimensions()[0];
  checks.Require(rows >= 0, "row_offsets must have M + 1 >= 1 entries, got 0")
      .Shape("col_indices", col_indices, {nse})
      .Shape("B", rhs, {transpose ? rows : cols, n})
      .Shape("out", *out, {transpose ? cols : rows, n})
      .SameDtype("B", rhs, "data", data.element_type())
      .SameDtype("out", *out, "data", data.element_type())
      .SameDtype("row_offsets", row_offsets, "col_indices", col_indices.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("data", data.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("col_indices", col_indices.element_type(), [&](auto index) {
      using Index = decltype(index);
      auto kernel = transpose ? CsrSpmmTransposed<Value, Index> : CsrSpmm<Value, Index>;
      return ArgumentChecks::Fail(
          "jsparse_csr_spmm",
          kernel(executor, DataOf<Storage>(data), DataOf<Index>(col_indices),
                 DataOf<Index>(row_offsets), rows, cols, nse, DataOf<Storage>(rhs), n,
                 DataOf<Storage>(out)));
    });
  });
}

ffi::Error CsrSddmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer col_indices,
                           ffi::AnyBuffer row_offsets, ffi::AnyBuffer x, ffi::AnyBuffer y,
                           ffi::Result<ffi::AnyBuffer> values) {
  ArgumentChecks checks("jsparse_csr_sddmm");
  checks.Shape("col_indices", col_indices, {-1}).Shape("row_offsets", row_offsets, {-1})
      .Shape("X", x, {-1, -1}).Shape("Y", y, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = col_indices.element_count();
  const int64_t rows = static_cast<int64_t>(row_offsets.element_count()) - 1;
  const int64_t cols = y.dimensions()[0], depth = x.dimensions()[1];
  checks.Require(rows >= 0, "row_offsets must have M + 1 >= 1 entries, got 0")
      .Shape("X", x, {rows, depth}).Shape("Y", y, {cols, depth}).Shape("values", *values, {nse})
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
          "jsparse_csr_sddmm",
          CsrSddmm<Value, Index>(executor, DataOf<Index>(col_indices), DataOf<Index>(row_offsets),
                                 rows, cols, nse, DataOf<Storage>(x), DataOf<Storage>(y), depth,
                                 DataOf<Storage>(values)));
    });
  });
}

}  // namespace
}  // namespace jsparse

namespace ffi = xla::ffi;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCsrSpmm, jsparse::CsrSpmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // row_offsets
                                  .Arg<ffi::AnyBuffer>()  // B
                                  .Ret<ffi::AnyBuffer>()  // out
                                  .Attr<bool>("transpose"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCsrSddmm, jsparse::CsrSddmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // row_offsets
                                  .Arg<ffi::AnyBuffer>()  // X
                                  .Arg<ffi::AnyBuffer>()  // Y
                                  .Ret<ffi::AnyBuffer>());  // values
