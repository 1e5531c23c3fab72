// What the FFI handlers share: XLA's thread pool as an Executor, dispatch on the runtime dtypes
// of untyped buffers, and shape checks whose messages name the argument.

#ifndef JSPARSE_CSRC_FFI_SUPPORT_H_
#define JSPARSE_CSRC_FFI_SUPPORT_H_

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <string>
#include <thread>
#include <utility>

#include "common.h"
#include "xla/ffi/api/ffi.h"

namespace jsparse {

namespace ffi = xla::ffi;

// The most threads (the caller included) a kernel uses: $JSPARSE_CPU_THREADS when set to a
// positive integer, else the number of cores. Read once.
inline int64_t MaxKernelThreads() {
  static const int64_t threads = [] {
    const char* setting = std::getenv("JSPARSE_CPU_THREADS");
    const long long requested = setting ? std::atoll(setting) : 0;
    if (requested > 0) return static_cast<int64_t>(requested);
    return static_cast<int64_t>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return threads;
}

// XLA's intra-op thread pool (ffi::ThreadPool, in the FFI headers since jax 0.4.36). The caller
// works too, so it uses one worker fewer than the pool has threads, and never more than
// MaxKernelThreads() in all; with no pool (num_threads() == 0) everything runs on the caller.
class FfiExecutor final : public Executor {
 public:
  explicit FfiExecutor(ffi::ThreadPool pool) : pool_(pool) {
    workers_ = std::max<int64_t>(0, std::min(pool_.num_threads(), MaxKernelThreads()) - 1);
  }
  int64_t num_workers() const override { return workers_; }
  void Schedule(std::function<void()> task) const override { pool_.Schedule(std::move(task)); }

 private:
  mutable ffi::ThreadPool pool_;
  int64_t workers_ = 0;
};

inline const char* DtypeName(ffi::DataType dtype) {
  switch (dtype) {
    case ffi::DataType::F16: return "float16";
    case ffi::DataType::BF16: return "bfloat16";
    case ffi::DataType::F32: return "float32";
    case ffi::DataType::F64: return "float64";
    case ffi::DataType::S32: return "int32";
    case ffi::DataType::S64: return "int64";
    case ffi::DataType::U8: return "uint8";
    default: return "an unsupported dtype";
  }
}

// Calls f(Value{}) with the value type of `dtype` (float32, float64 or bfloat16).
template <typename F>
ffi::Error WithValueType(const char* name, ffi::DataType dtype, F&& f) {
  switch (dtype) {
    case ffi::DataType::F32: return f(NativeValue<float>{});
    case ffi::DataType::F64: return f(NativeValue<double>{});
    case ffi::DataType::BF16: return f(BFloat16Value{});
    default:
      return ffi::Error::InvalidArgument(std::string(name) + " must be float32, float64 or "
                                         "bfloat16, got " + DtypeName(dtype));
  }
}

// Calls f(Index{}) with the index type of `dtype` (int32 or int64).
template <typename F>
ffi::Error WithIndexType(const char* name, ffi::DataType dtype, F&& f) {
  switch (dtype) {
    case ffi::DataType::S32: return f(int32_t{});
    case ffi::DataType::S64: return f(int64_t{});
    default:
      return ffi::Error::InvalidArgument(std::string(name) + " must be int32 or int64, got " +
                                         DtypeName(dtype));
  }
}

// Collects the first failed check of a handler's arguments.
class ArgumentChecks {
 public:
  explicit ArgumentChecks(const char* kernel) : kernel_(kernel) {}

  // `buffer` has rank dims.size() and those dimensions (-1 matches any size).
  ArgumentChecks& Shape(const char* name, const ffi::AnyBuffer& buffer,
                        std::initializer_list<int64_t> dims) {
    if (!message_.empty()) return *this;
    const auto actual = buffer.dimensions();
    bool same = actual.size() == dims.size();
    size_t axis = 0;
    for (int64_t dim : dims) {
      if (same && dim >= 0 && actual[axis] != dim) same = false;
      ++axis;
    }
    if (!same) {
      std::string want, got;
      for (int64_t dim : dims) want += (want.empty() ? "" : ", ") + (dim < 0 ? "*" : std::to_string(dim));
      for (int64_t dim : actual) got += (got.empty() ? "" : ", ") + std::to_string(dim);
      message_ = std::string(name) + " must have shape (" + want + "), got (" + got + ")";
    }
    return *this;
  }

  ArgumentChecks& SameDtype(const char* name, const ffi::AnyBuffer& buffer, const char* other,
                            ffi::DataType dtype) {
    if (message_.empty() && buffer.element_type() != dtype) {
      message_ = std::string(name) + " must have the dtype of " + other + " (" +
                 DtypeName(dtype) + "), got " + DtypeName(buffer.element_type());
    }
    return *this;
  }

  ArgumentChecks& Require(bool ok, const std::string& message) {
    if (message_.empty() && !ok) message_ = message;
    return *this;
  }

  bool ok() const { return message_.empty(); }
  ffi::Error error() const { return Fail(kernel_, message_); }

  // An InvalidArgument error "kernel: message", or Success for an empty message.
  static ffi::Error Fail(const char* kernel, const std::string& message) {
    if (message.empty()) return ffi::Error::Success();
    return ffi::Error::InvalidArgument(std::string(kernel) + ": " + message);
  }

 private:
  const char* kernel_;
  std::string message_;
};

template <typename T>
const T* DataOf(const ffi::AnyBuffer& buffer) {
  return static_cast<const T*>(buffer.untyped_data());
}

template <typename T>
T* DataOf(ffi::Result<ffi::AnyBuffer>& buffer) {
  return static_cast<T*>(buffer->untyped_data());
}

}  // namespace jsparse

#endif  // JSPARSE_CSRC_FFI_SUPPORT_H_
