// 2:4 structured sparse x dense products on the GPU's sparse tensor cores through cuSPARSELt,
// as XLA FFI custom calls (platform "CUDA").
//
// Pallas cannot reach Hopper's sparse wgmma (BUILD_NOTES.md, "2:4 and the sparse tensor cores");
// cuSPARSELt can. Built on a CUDA machine by `python -m jsparse._gpu.cusparselt build` (nvcc,
// cuSPARSELt from the nvidia-cusparselt wheel, the FFI headers from jaxlib); never in CI.
//
// Layouts (all row-major): A [M, K] with 2 kept of every 4 along K, compressed once
// (JsparseCusparseltCompress) into cuSPARSELt's opaque uint8 buffer; B [K, N]; C [M, N]; one
// dtype for A, B and C (bfloat16 or float16), float32 accumulation.
//
// Plans (descriptors, algorithm, workspace size) depend on (M, K, N, dtype, algorithm) and are
// built once per process, cached behind a mutex; one cuSPARSELt handle per process. A product
// may name cuSPARSELt's algorithm (config ID; attribute alg, -1: the library's default).

#include <cuda_runtime_api.h>
#include <cusparseLt.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

std::string Status(const char* what, cusparseStatus_t status) {
  return std::string("cuSPARSELt ") + what + " failed: " + cusparseLtGetErrorString(status) +
         " (" + std::to_string(static_cast<int>(status)) + ")";
}

#define RETURN_IF_CUSPARSELT(call)                                         \
  do {                                                                     \
    cusparseStatus_t status_ = (call);                                     \
    if (status_ != CUSPARSE_STATUS_SUCCESS)                                \
      return ffi::Error(ffi::ErrorCode::kInternal, Status(#call, status_)); \
  } while (0)

struct Handle {
  cusparseLtHandle_t handle;
  cusparseStatus_t status;
  Handle() { status = cusparseLtInit(&handle); }
};

// The process's handle (created on first use, on the current device).
Handle& GetHandle() {
  static Handle* handle = new Handle();
  return *handle;
}

ffi::ErrorOr<cudaDataType> CudaType(ffi::DataType dtype) {
  switch (dtype) {
    case ffi::DataType::BF16:
      return CUDA_R_16BF;
    case ffi::DataType::F16:
      return CUDA_R_16F;
    default:
      return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                        "cuSPARSELt products take bfloat16 or float16 operands");
  }
}

// Descriptors of one product shape; the plan keeps pointers to them, so they live on the heap.
struct Plan {
  cusparseLtMatDescriptor_t a, b, c;
  cusparseLtMatmulDescriptor_t matmul;
  cusparseLtMatmulAlgSelection_t selection;
  cusparseLtMatmulPlan_t plan;
  size_t workspace = 0;
};

constexpr unsigned kAlignment = 16;

// The layout of the dense operand and the result.
//   kRowMajor: B [K, N] and C [M, N] row-major (C = A B).
//   kTokensMajor: B given as X [N, K] row-major, read transposed (op T), and C written
//     column-major, i.e. Y [N, M] row-major: a layer's Y = X A^T with no transposes around the
//     call (the layout torch's _cslt_sparse_mm uses).
//   kTokensMajorColumns: the same memory, X described as a column-major [K, N] B (op N).
enum Layout : int64_t { kRowMajor = 0, kTokensMajor = 1, kTokensMajorColumns = 2 };

// A launch choice: cuSPARSELt's algorithm (config ID), -1 for its default; and the layout.
struct Choice {
  int64_t alg = -1;
  int64_t layout = kRowMajor;
};

ffi::Error InitPlan(Plan& p, int64_t m, int64_t k, int64_t n, cudaDataType type,
                    Choice choice) {
  cusparseLtHandle_t* handle = &GetHandle().handle;
  const auto order = CUSPARSE_ORDER_ROW;
  const auto op = CUSPARSE_OPERATION_NON_TRANSPOSE;
  RETURN_IF_CUSPARSELT(cusparseLtStructuredDescriptorInit(handle, &p.a, m, k, k, kAlignment, type,
                                                          order, CUSPARSELT_SPARSITY_50_PERCENT));
  auto op_b = op;
  if (choice.layout == kRowMajor) {
    RETURN_IF_CUSPARSELT(
        cusparseLtDenseDescriptorInit(handle, &p.b, k, n, n, kAlignment, type, order));
    RETURN_IF_CUSPARSELT(
        cusparseLtDenseDescriptorInit(handle, &p.c, m, n, n, kAlignment, type, order));
  } else {
    if (choice.layout == kTokensMajor) {
      RETURN_IF_CUSPARSELT(
          cusparseLtDenseDescriptorInit(handle, &p.b, n, k, k, kAlignment, type, order));
      op_b = CUSPARSE_OPERATION_TRANSPOSE;
    } else {
      RETURN_IF_CUSPARSELT(cusparseLtDenseDescriptorInit(handle, &p.b, k, n, k, kAlignment, type,
                                                         CUSPARSE_ORDER_COL));
    }
    RETURN_IF_CUSPARSELT(cusparseLtDenseDescriptorInit(handle, &p.c, m, n, m, kAlignment, type,
                                                       CUSPARSE_ORDER_COL));
  }
  RETURN_IF_CUSPARSELT(cusparseLtMatmulDescriptorInit(handle, &p.matmul, op, op_b, &p.a, &p.b,
                                                      &p.c, &p.c, CUSPARSE_COMPUTE_32F));
  RETURN_IF_CUSPARSELT(cusparseLtMatmulAlgSelectionInit(handle, &p.selection, &p.matmul,
                                                        CUSPARSELT_MATMUL_ALG_DEFAULT));
  if (choice.alg >= 0) {
    int alg = static_cast<int>(choice.alg);
    RETURN_IF_CUSPARSELT(cusparseLtMatmulAlgSetAttribute(
        handle, &p.selection, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &alg, sizeof(alg)));
  }
  RETURN_IF_CUSPARSELT(cusparseLtMatmulPlanInit(handle, &p.plan, &p.matmul, &p.selection));
  RETURN_IF_CUSPARSELT(cusparseLtMatmulGetWorkspace(handle, &p.plan, &p.workspace));
  return ffi::Error::Success();
}

// The cached plan of (m, k, n, type, choice), built on first use.
ffi::ErrorOr<Plan*> GetPlan(int64_t m, int64_t k, int64_t n, cudaDataType type,
                            Choice choice = Choice()) {
  static std::mutex mutex;
  static auto* plans = new std::map<std::tuple<int64_t, int64_t, int64_t, int, int64_t, int64_t>,
                                    std::unique_ptr<Plan>>();
  if (GetHandle().status != CUSPARSE_STATUS_SUCCESS)
    return ffi::Error(ffi::ErrorCode::kInternal, Status("cusparseLtInit", GetHandle().status));
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_tuple(m, k, n, static_cast<int>(type), choice.alg, choice.layout);
  auto found = plans->find(key);
  if (found != plans->end()) return found->second.get();
  auto plan = std::make_unique<Plan>();
  ffi::Error error = InitPlan(*plan, m, k, n, type, choice);
  if (error.failure()) return error;
  Plan* raw = plan.get();
  (*plans)[key] = std::move(plan);
  return raw;
}

// The plan compressions use: the compressed layout depends on A alone, so any N serves (16).
ffi::ErrorOr<Plan*> CompressionPlan(int64_t m, int64_t k, cudaDataType type) {
  return GetPlan(m, k, 16, type);
}

// Compressed bytes of the plan's A (and the scratch its compression needs).
ffi::ErrorOr<std::pair<size_t, size_t>> CompressedSize(Plan* plan) {
  size_t size = 0, scratch = 0;
  cusparseStatus_t status =
      cusparseLtSpMMACompressedSize(&GetHandle().handle, &plan->plan, &size, &scratch);
  if (status != CUSPARSE_STATUS_SUCCESS)
    return ffi::Error(ffi::ErrorCode::kInternal, Status("cusparseLtSpMMACompressedSize", status));
  return std::make_pair(size, scratch);
}

ffi::Error CompressImpl(cudaStream_t stream, ffi::ScratchAllocator scratch, ffi::AnyBuffer dense,
                        ffi::Result<ffi::AnyBuffer> compressed) {
  auto dims = dense.dimensions();
  if (dims.size() != 2)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument, "dense A must be [M, K]");
  auto type = CudaType(dense.element_type());
  if (type.has_error()) return type.error();
  auto plan = CompressionPlan(dims[0], dims[1], *type);
  if (plan.has_error()) return plan.error();
  auto sizes = CompressedSize(*plan);
  if (sizes.has_error()) return sizes.error();
  if (compressed->size_bytes() != sizes->first)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "compressed buffer is " + std::to_string(compressed->size_bytes()) +
                          " bytes; cuSPARSELt needs " + std::to_string(sizes->first));
  auto buffer = scratch.Allocate(sizes->second > 0 ? sizes->second : 1);
  if (!buffer.has_value())
    return ffi::Error(ffi::ErrorCode::kResourceExhausted, "no scratch for the compression");
  RETURN_IF_CUSPARSELT(cusparseLtSpMMACompress(&GetHandle().handle, &(*plan)->plan,
                                               dense.untyped_data(), compressed->untyped_data(),
                                               *buffer, stream));
  return ffi::Error::Success();
}

// The product. Its plan is made on the host while tracing (jsparse_cusparselt_workspace_size),
// and its workspace is an output XLA allocates, so the call holds no allocation or plan set-up
// and can be captured in XLA's command buffers (CUDA graphs) with the kernels around it.
ffi::Error MatmulImpl(cudaStream_t stream, ffi::AnyBuffer compressed, ffi::AnyBuffer dense,
                      ffi::Result<ffi::AnyBuffer> out, ffi::Result<ffi::AnyBuffer> workspace,
                      int64_t m, int64_t k, int64_t alg, int64_t layout) {
  auto dims = dense.dimensions();
  const bool tokens_major = layout != kRowMajor;
  if (dims.size() != 2 || dims[tokens_major ? 1 : 0] != k)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      tokens_major ? "dense X must be [N, K]" : "dense B must be [K, N]");
  const int64_t n = dims[tokens_major ? 0 : 1];
  auto type = CudaType(dense.element_type());
  if (type.has_error()) return type.error();
  auto plan = GetPlan(m, k, n, *type, Choice{alg, layout});
  if (plan.has_error()) return plan.error();
  if (workspace->size_bytes() < (*plan)->workspace)
    return ffi::Error(ffi::ErrorCode::kInvalidArgument,
                      "workspace is " + std::to_string(workspace->size_bytes()) +
                          " bytes; the plan needs " + std::to_string((*plan)->workspace));
  const float alpha = 1.0f, beta = 0.0f;
  RETURN_IF_CUSPARSELT(cusparseLtMatmul(&GetHandle().handle, &(*plan)->plan, &alpha,
                                        compressed.untyped_data(), dense.untyped_data(), &beta,
                                        out->untyped_data(), out->untyped_data(),
                                        workspace->untyped_data(), &stream, 1));
  return ffi::Error::Success();
}

// Copies `message` into the caller's buffer of `size` bytes (cut to fit, NUL-terminated).
void CopyMessage(const std::string& message, char* buffer, size_t size) {
  if (size == 0) return;
  size_t length = message.size() < size - 1 ? message.size() : size - 1;
  message.copy(buffer, length);
  buffer[length] = '\0';
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCusparseltCompress, CompressImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Ctx<ffi::ScratchAllocator>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseCusparseltMatmul, MatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("alg")
                                  .Attr<int64_t>("layout"),
                              {ffi::Traits::kCmdBufferCompatible});

// Host query for the tracer: bytes of the compressed [m, k] matrix of dtype 0 = bfloat16,
// 1 = float16 (0 on failure, the message in `error`, up to `error_size` bytes).
extern "C" size_t jsparse_cusparselt_compressed_size(int64_t m, int64_t k, int dtype, char* error,
                                                     size_t error_size) {
  auto plan = CompressionPlan(m, k, dtype == 0 ? CUDA_R_16BF : CUDA_R_16F);
  auto sizes = plan.has_error() ? ffi::ErrorOr<std::pair<size_t, size_t>>(plan.error())
                                : CompressedSize(*plan);
  if (sizes.has_error()) {
    CopyMessage(sizes.error().message(), error, error_size);
    return 0;
  }
  return sizes->first;
}

// Host query: how many algorithms (config IDs 0 .. count - 1) cuSPARSELt offers for an
// [m, k] x [k, n] product of dtype 0 = bfloat16, 1 = float16 in `layout`: its CONFIG_MAX_ID (on
// the H100 the ID equal to it was refused as an invalid value); -1 on failure.
extern "C" int jsparse_cusparselt_alg_count(int64_t m, int64_t k, int64_t n, int dtype,
                                           int64_t layout) {
  auto plan =
      GetPlan(m, k, n, dtype == 0 ? CUDA_R_16BF : CUDA_R_16F, Choice{-1, layout});
  if (plan.has_error()) return -1;
  int max_id = -1;
  if (cusparseLtMatmulAlgGetAttribute(&GetHandle().handle, &(*plan)->selection,
                                      CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_id,
                                      sizeof(max_id)) != CUSPARSE_STATUS_SUCCESS)
    return -1;
  return max_id;
}

// Host query made while tracing a product: builds (and caches) its plan, returns the bytes of
// workspace it needs (-1 on failure, the message in `error`, up to `error_size` bytes).
extern "C" int64_t jsparse_cusparselt_workspace_size(int64_t m, int64_t k, int64_t n, int dtype,
                                                     int64_t alg, int64_t layout, char* error,
                                                     size_t error_size) {
  auto plan = GetPlan(m, k, n, dtype == 0 ? CUDA_R_16BF : CUDA_R_16F, Choice{alg, layout});
  if (plan.has_error()) {
    CopyMessage(plan.error().message(), error, error_size);
    return -1;
  }
  return static_cast<int64_t>((*plan)->workspace);
}
