// XLA FFI handlers of the N:M kernels (loop nests in nm_kernels.h), attributes n and m:
//   jsparse_nm_spmm(data [M, K / m * n], indices uint8 [M, K / m * n], B) -> out, attribute
//     transpose: out [M, N] = A @ B for B [K, N], or out [K, N] = A.T @ B for B [M, N].
//   jsparse_nm_sddmm(indices uint8 [M, K / m * n], X [M, D], Y [K, D]) -> values [M, K / m * n].
// Values float32, float64 or bfloat16.

#include <cstdint>
#include <string>

#include "ffi_support.h"
#include "nm_kernels.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {
namespace {

// Checks n, m and the stored width; returns the number of groups per row (or -1 on failure).
int64_t CheckPattern(ArgumentChecks& checks, const ffi::AnyBuffer& indices, NmPattern pattern) {
  checks.Shape("indices", indices, {-1, -1})
      .Require(indices.element_type() == ffi::DataType::U8,
               std::string("indices must be uint8, got ") + DtypeName(indices.element_type()))
      .Require(pattern.n >= 1 && pattern.n <= pattern.m && pattern.m <= 255,
               "n and m must satisfy 1 <= n <= m <= 255, got n = " + std::to_string(pattern.n) +
                   ", m = " + std::to_string(pattern.m));
  if (!checks.ok()) return -1;
  const int64_t stored = indices.dimensions()[1];
  checks.Require(stored % pattern.n == 0, "indices.shape[1] = " + std::to_string(stored) +
                                              " is not a multiple of n = " +
                                              std::to_string(pattern.n));
  return checks.ok() ? stored / pattern.n : -1;
}

ffi::Error NmSpmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer data, ffi::AnyBuffer indices,
                         ffi::AnyBuffer rhs, ffi::Result<ffi::AnyBuffer> out, bool transpose,
                         int64_t n, int64_t m) {
  ArgumentChecks checks("jsparse_nm_spmm");
  const NmPattern pattern{n, m};
  const int64_t groups = CheckPattern(checks, indices, pattern);
  checks.Shape("B", rhs, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t rows = indices.dimensions()[0], n_cols = rhs.dimensions()[1];
  checks.Shape("data", data, {rows, groups * n})
      .Shape("B", rhs, {transpose ? rows : groups * m, n_cols})
      .Shape("out", *out, {transpose ? groups * m : rows, n_cols})
      .SameDtype("B", rhs, "data", data.element_type())
      .SameDtype("out", *out, "data", data.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("data", data.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    auto kernel = transpose ? NmSpmmTransposed<Value> : NmSpmm<Value>;
    return ArgumentChecks::Fail(
        "jsparse_nm_spmm", kernel(executor, DataOf<Storage>(data), DataOf<uint8_t>(indices), rows,
                                  groups, pattern, DataOf<Storage>(rhs), n_cols,
                                  DataOf<Storage>(out)));
  });
}

ffi::Error NmSddmmHandler(ffi::ThreadPool pool, ffi::AnyBuffer indices, ffi::AnyBuffer x,
                          ffi::AnyBuffer y, ffi::Result<ffi::AnyBuffer> values, int64_t n,
                          int64_t m) {
  ArgumentChecks checks("jsparse_nm_sddmm");
  const NmPattern pattern{n, m};
  const int64_t groups = CheckPattern(checks, indices, pattern);
  checks.Shape("X", x, {-1, -1});
  if (!checks.ok()) return checks.error();
  const int64_t rows = indices.dimensions()[0], depth = x.dimensions()[1];
  checks.Shape("X", x, {rows, depth}).Shape("Y", y, {groups * m, depth})
      .Shape("values", *values, {rows, groups * n})
      .SameDtype("Y", y, "X", x.element_type()).SameDtype("values", *values, "X", x.element_type());
  if (!checks.ok()) return checks.error();
  FfiExecutor executor(pool);
  return WithValueType("X", x.element_type(), [&](auto value) {
    using Value = decltype(value);
    using Storage = typename Value::Storage;
    return ArgumentChecks::Fail(
        "jsparse_nm_sddmm",
        NmSddmm<Value>(executor, DataOf<uint8_t>(indices), rows, groups, pattern,
                       DataOf<Storage>(x), DataOf<Storage>(y), depth, DataOf<Storage>(values)));
  });
}

}  // namespace
}  // namespace jsparse

namespace ffi = xla::ffi;

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseNmSpmm, jsparse::NmSpmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // data
                                  .Arg<ffi::AnyBuffer>()  // indices
                                  .Arg<ffi::AnyBuffer>()  // B
                                  .Ret<ffi::AnyBuffer>()  // out
                                  .Attr<bool>("transpose")
                                  .Attr<int64_t>("n")
                                  .Attr<int64_t>("m"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseNmSddmm, jsparse::NmSddmmHandler,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()  // indices
                                  .Arg<ffi::AnyBuffer>()  // X
                                  .Arg<ffi::AnyBuffer>()  // Y
                                  .Ret<ffi::AnyBuffer>()  // values
                                  .Attr<int64_t>("n")
                                  .Attr<int64_t>("m"));
