// XLA FFI handlers of the COO kernels (loop nests in coo_kernels.h):
//   jsparse_coo_spmm(data [nse], row_indices [nse], col_indices [nse], B) -> out, attribute
//     transpose: out [M, N] = A @ B for B [K, N], or out [K, N] = A.T @ B for B [M, N] (M and K
//     come from the shapes of B and out).
//   jsparse_coo_sddmm(row_indices [nse], col_indices [nse], X [M, D], Y [K, D]) -> values [nse].
// Values float32, float64 or bfloat16; indices int32 or int64 (one dtype for both).

#include <cstdint>
#include <string>

#include "coo_kernels.h"
#include "ffi_support.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {
namespace {

ffi::Error CooSpmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer data, ffi::AnyBuffer row_indices,
                          ffi::AnyBuffer col_indices, ffi::AnyBuffer rhs,
                          ffi::Result<ffi::AnyBuffer> out, bool transpose) {
  ArgumentChecks checks("jsparse_coo_spmm");
  checks.Shape("data", data, {-1}).Shape("B", rhs, {-1, -1}).Shape("out", *out, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = data.element_count();
  const int64_t n = rhs.dimensions()[1];
  const int64_t rows = transpose ? rhs.dimensions()[0] : out->dimensions()[0];
  const int64_t cols = transpose ? out->dimensions()[0] : rhs.dimensions()[0];
  checks.Shape("row_indices", row_indices, {nse}).Shape("col_indices", col_indices, {nse})
      .Shape("out", *out, {transpose ? cols : rows, n})
      .SameDtype("B", rhs, "data", data.element_type())
      .SameDtype("out", *out, "data", data.element_type())
      .SameDtype("col_indices", col_indices, "row_indices", row_indices.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("data", data.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("row_indices", row_indices.element_type(), [&](auto index) {
      using Index = decltype(index);
      return ArgumentChecks::Fail(
          "jsparse_coo_spmm",
          CooSpmm<Value, Index>(executor, DataOf<Storage>(data), DataOf<Index>(row_indices),
                                DataOf<Index>(col_indices), nse, rows, cols, transpose,
                                DataOf<Storage>(rhs), n, DataOf<Storage>(out)));
    });
  });
}

ffi::Error CooSddmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer row_indices,
                           ffi::AnyBuffer col_indices, ffi::AnyBuffer x, ffi::AnyBuffer y,
                           ffi::Result<ffi::AnyBuffer> values) {
  ArgumentChecks checks("jsparse_coo_sddmm");
  checks.Shape("row_indices", row_indices, {-1}).Shape("X", x, {-1, -1}).Shape("Y", y, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t nse = row_indices.element_count();
  const int64_t rows = x.dimensions()[0], cols = y.dimensions()[0], depth = x.dimensions()[1];
  checks.Shape("col_indices", col_indices, {nse}).Shape("Y", y, {cols, depth})
      .Shape("values", *values, {nse})
      .SameDtype("Y", y, "X", x.element_type()).SameDtype("values", *values, "X", x.element_type())
      .SameDtype("col_indices", col_indices, "row_indices", row_indices.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("X", x.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return WithIndexType("row_indices", row_indices.element_type(), [&](auto index) {
      using Index = decltype(index);
      return ArgumentChecks::Fail(
          "jsparse_coo_sddmm",
          CooSddmm<Value, Index>(executor, DataOf<Index>(row_indices), DataOf<Index>(col_indices),
                                 nse, rows, cols, DataOf<Storage>(x), DataOf<Storage>(y), depth,
                                 DataOf<Storage>(values)));
    });
  });
}

}  // namespace
}  // namespace jsparse

namespace ffi = xla::ffi;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCooSpmm, jsparse::CooSpmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // row_indices
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // B
                                  .Ret<ffi::AnyBuffer>()  // out
                                  .Attr<bool>("transpose"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCooSddmm, jsparse::CooSddmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // row_indices
                                  .Arg<ffi::AnyBuffer>()  // col_indices
                                  .Arg<ffi::AnyBuffer>()  // X
                                  .Arg<ffi::AnyBuffer>()  // Y
                                  .Ret<ffi::AnyBuffer>());  // values
