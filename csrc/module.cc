// The _jsparse_cpu extension: hands every FFI handler in this library to Python as a capsule,
// keyed by the target name that jsparse/_cpu registers it under.

#include <nanobind/nanobind.h>

#include "xla/ffi/api/ffi.h"

XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCsrSpmvF32);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCsrSpmvF64);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCsrSpmvBF16);

namespace nb = nanobind;

namespace {

template <typename Fn>
nb::capsule EncapsulateFfiHandler(Fn* fn) {
  return nb::capsule(reinterpret_cast<void*>(fn));
}

}  // namespace

NB_MODULE(_jsparse_cpu, m) {
  m.def(
      "registrations",
      []() {
        nb::dict targets;
        targets["jsparse_csr_spmv_f32"] = EncapsulateFfiHandler(JsparseCsrSpmvF32);
        targets["jsparse_csr_spmv_f64"] = EncapsulateFfiHandler(JsparseCsrSpmvF64);
        targets["jsparse_csr_spmv_bf16"] = EncapsulateFfiHandler(JsparseCsrSpmvBF16);
        return targets;
      },
      "Returns {FFI target name: PyCapsule of its XLA FFI handler} for the CPU platform.");
}
