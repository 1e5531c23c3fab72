// The _jsparse_cpu extension: hands every FFI handler in this library to Python as a capsule,
// keyed by the target name that jsparse/_cpu registers it under.

#include <nanobind/nanobind.h>

#include "dense_rows.h"
#include "xla/ffi/api/ffi.h"

XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCsrSpmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCsrSddmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCooSpmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseCooSddmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseBsrSpmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseBsrSddmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseNmSpmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseNmSddmm);
XLA_FFI_DECLARE_HANDLER_SYMBOL(JsparseTiledSpmm);

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
        targets["jsparse_csr_spmm"] = EncapsulateFfiHandler(JsparseCsrSpmm);
        targets["jsparse_csr_sddmm"] = EncapsulateFfiHandler(JsparseCsrSddmm);
        targets["jsparse_coo_spmm"] = EncapsulateFfiHandler(JsparseCooSpmm);
        targets["jsparse_coo_sddmm"] = EncapsulateFfiHandler(JsparseCooSddmm);
        targets["jsparse_bsr_spmm"] = EncapsulateFfiHandler(JsparseBsrSpmm);
        targets["jsparse_bsr_sddmm"] = EncapsulateFfiHandler(JsparseBsrSddmm);
        targets["jsparse_nm_spmm"] = EncapsulateFfiHandler(JsparseNmSpmm);
        targets["jsparse_nm_sddmm"] = EncapsulateFfiHandler(JsparseNmSddmm);
        targets["jsparse_tiled_spmm"] = EncapsulateFfiHandler(JsparseTiledSpmm);
        return targets;
      },
      "Returns {FFI target name: PyCapsule of its XLA FFI handler} for the CPU platform.");
  m.def(
      "vector_isa",
      []() {
#ifdef JSPARSE_X86_DISPATCH
        return jsparse::HasAvx2Fma() ? "avx2+fma" : "x86-64 baseline (sse2)";
#else
        return "baseline";
#endif
      },
      "The vector instruction set the kernels' inner loops run with on this CPU.");
}
