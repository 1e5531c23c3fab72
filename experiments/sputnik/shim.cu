// extern "C" entry points into Sputnik's float32 SpMM and SDDMM (Gale et al., SC20), for ctypes.
//
// Built by experiments/sputnik/build.sh together with Sputnik's own sources (fetched into the
// git-ignored third_party/sputnik, never committed). Each function returns a cudaError_t as an
// int (0: launched); sputnik_error_string turns a code into CUDA's message. The kernels run
// asynchronously on `stream` (a cudaStream_t passed as a pointer; NULL: the legacy default stream).
// Argument checks beyond these (dtypes, shapes, the row swizzle, alignment) live in the Python
// wrapper, experiments/sputnik/binding.py, which is the only caller.

#include <cuda_runtime.h>

#include "sputnik/sddmm/cuda_sddmm.h"
#include "sputnik/spmm/cuda_spmm.h"

#define SPUTNIK_JSPARSE_API extern "C" __attribute__((visibility("default")))

namespace {

// Sizes that launch nothing: Sputnik would ask for an empty grid (an "invalid configuration"
// launch error) instead of returning.
bool Empty(int a, int b) { return a == 0 || b == 0; }

bool Negative(int a, int b, int c, int d) { return a < 0 || b < 0 || c < 0 || d < 0; }

}  // namespace

// output [m, n] (row-major) = A [m, k] (CSR: values / column_indices [nonzeros],
// row_offsets [m + 1]) @ dense [k, n] (row-major). row_indices [m]: a permutation of the rows,
// the order Sputnik assigns them to thread blocks (longest rows first balances the work).
// Every entry of output is written, empty rows included.
SPUTNIK_JSPARSE_API int sputnik_spmm_f32(int m, int k, int n, int nonzeros,
                                         const int* row_indices, const float* values,
                                         const int* row_offsets, const int* column_indices,
                                         const float* dense, float* output, void* stream) {
  if (Negative(m, k, n, nonzeros)) return static_cast<int>(cudaErrorInvalidValue);
  if (Empty(m, n)) return static_cast<int>(cudaSuccess);
  return static_cast<int>(sputnik::CudaSpmm(m, k, n, nonzeros, row_indices, values, row_offsets,
                                            column_indices, dense, output,
                                            static_cast<cudaStream_t>(stream)));
}

// output_values [nonzeros] = (lhs [m, k] @ rhs [n, k]^T) at the pattern (row_offsets [m + 1],
// column_indices [nonzeros]) of an [m, n] CSR matrix, in the pattern's order; k is the inner
// (embedding) dimension. row_indices [m]: the row order, as for SpMM.
SPUTNIK_JSPARSE_API int sputnik_sddmm_f32(int m, int k, int n, int nonzeros,
                                          const int* row_indices, const int* row_offsets,
                                          const int* column_indices, const float* lhs,
                                          const float* rhs, float* output_values, void* stream) {
  if (Negative(m, k, n, nonzeros)) return static_cast<int>(cudaErrorInvalidValue);
  if (Empty(m, nonzeros)) return static_cast<int>(cudaSuccess);
  if (k == 0) {  // empty inner products: zeros, without asking Sputnik for a zero-length k loop
    return static_cast<int>(cudaMemsetAsync(output_values, 0, sizeof(float) * nonzeros,
                                            static_cast<cudaStream_t>(stream)));
  }
  return static_cast<int>(sputnik::CudaSddmm(m, k, n, nonzeros, row_indices, row_offsets,
                                             column_indices, lhs, rhs, output_values,
                                             static_cast<cudaStream_t>(stream)));
}

SPUTNIK_JSPARSE_API const char* sputnik_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}
