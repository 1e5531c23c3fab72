// XLA FFI handlers for CSR sparse matrix-vector products, one per value dtype:
//   jsparse_csr_spmv_{f32,f64,bf16}(data[nse], col_indices[nse] s32, row_offsets[M + 1] s32,
//                                   x[K]) -> y[M]
// with data, x and y of the same dtype. The loop nest and the validation live in csr_spmv.h.

#include "csr_spmv.h"

#include <cstdint>
#include <string>
#include <utility>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace jsparse {
namespace {

template <ffi::DataType dtype>
struct ValueOf;
template <>
struct ValueOf<ffi::F32> {
  using type = NativeValue<float>;
};
template <>
struct ValueOf<ffi::F64> {
  using type = NativeValue<double>;
};
template <>
struct ValueOf<ffi::BF16> {
  using type = BFloat16Value;
};

template <ffi::DataType dtype>
ffi::Error CsrSpmvHandler(ffi::BufferR1<dtype> data, ffi::BufferR1<ffi::S32> col_indices,
                          ffi::BufferR1<ffi::S32> row_offsets, ffi::BufferR1<dtype> x,
                          ffi::ResultBufferR1<dtype> y) {
  const int64_t nse = data.element_count();
  if (static_cast<int64_t>(col_indices.element_count()) != nse) {
    return ffi::Error::InvalidArgument(
        "data and col_indices must have the same length nse, got " + std::to_string(nse) +
        " and " + std::to_string(col_indices.element_count()));
  }
  if (row_offsets.element_count() == 0) {
    return ffi::Error::InvalidArgument("row_offsets must have M + 1 >= 1 entries, got 0");
  }
  const int64_t rows = static_cast<int64_t>(row_offsets.element_count()) - 1;
  if (static_cast<int64_t>(y->element_count()) != rows) {
    return ffi::Error::InvalidArgument(
        "result y must have M = len(row_offsets) - 1 = " + std::to_string(rows) +
        " entries, got " + std::to_string(y->element_count()));
  }
  std::string error = CsrSpmv<typename ValueOf<dtype>::type, int32_t>(
      data.typed_data(), col_indices.typed_data(), row_offsets.typed_data(), rows,
      static_cast<int64_t>(x.element_count()), nse, x.typed_data(), y->typed_data());
  if (!error.empty()) return ffi::Error::InvalidArgument(std::move(error));
  return ffi::Error::Success();
}

template <ffi::DataType dtype>
auto BindCsrSpmv() {
  // After the first .Arg<> the binding's type depends on dtype, hence the `template` keywords.
  return ffi::Ffi::Bind()
      .Arg<ffi::BufferR1<dtype>>()               // data
      .template Arg<ffi::BufferR1<ffi::S32>>()   // col_indices
      .template Arg<ffi::BufferR1<ffi::S32>>()   // row_offsets
      .template Arg<ffi::BufferR1<dtype>>()      // x
      .template Ret<ffi::BufferR1<dtype>>();     // y
}

}  // namespace
}  // namespace jsparse

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCsrSpmvF32, jsparse::CsrSpmvHandler<ffi::F32>,
                              jsparse::BindCsrSpmv<ffi::F32>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCsrSpmvF64, jsparse::CsrSpmvHandler<ffi::F64>,
                              jsparse::BindCsrSpmv<ffi::F64>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCsrSpmvBF16, jsparse::CsrSpmvHandler<ffi::BF16>,
                              jsparse::BindCsrSpmv<ffi::BF16>());
