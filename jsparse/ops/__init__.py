"""jsparse primitives: SpMM, SpMV and SDDMM with pluggable platform kernels."""

from jsparse.ops.registry import register_kernel, registered_kernels
from jsparse.ops.sddmm import sddmm, sddmm_p
from jsparse.ops.spmm import matmul_transposed, spmm, spmm_p
from jsparse.ops.spmv import spmv, spmv_p

__all__ = ["matmul_transposed", "register_kernel", "registered_kernels", "sddmm", "sddmm_p",
           "spmm", "spmm_p", "spmv", "spmv_p"]
