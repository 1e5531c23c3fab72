// Times the CSR SpMM loop nest (csrc/csr_kernels.h) alone, without XLA or Python, on a uniform
// random float32 matrix: the quick loop for tuning the C++ kernels (run.py times the whole call).
//
//   g++ -std=c++17 -O3 -ffp-contract=fast -Icsrc experiments/cpu_kernels/spmm_bench.cc -o /tmp/spmm_bench -lpthread
//   /tmp/spmm_bench M K sparsity N [threads=2] [reps=20]
//
// Prints the median and best time of `reps` calls, GFLOP/s (2 * nnz * N per call) and the largest
// error against a float64 product, relative to |A| @ |B|. With one thread it also prints the
// median CPU time of the calling thread, which time slices lost to other processes on a shared
// machine do not inflate (wall time does).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "csr_kernels.h"

namespace {

// A persistent pool, as XLA's: threads wait for tasks rather than being started per call.
class PoolExecutor final : public jsparse::Executor {
 public:
  explicit PoolExecutor(int64_t workers) {
    for (int64_t i = 0; i < workers; ++i) threads_.emplace_back([this] { Work(); });
  }
  ~PoolExecutor() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    ready_.notify_all();
    for (auto& thread : threads_) thread.join();
  }
  int64_t num_workers() const override { return static_cast<int64_t>(threads_.size()); }
  void Schedule(std::function<void()> task) const override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return stop_ || !tasks_.empty(); });
        if (stop_ && tasks_.empty()) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }
  mutable std::mutex mutex_;
  mutable std::condition_variable ready_;
  mutable std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s M K sparsity N [threads] [reps]\n", argv[0]);
    return 2;
  }
  const int64_t rows = std::atoll(argv[1]), cols = std::atoll(argv[2]);
  const double sparsity = std::atof(argv[3]);
  const int64_t n = std::atoll(argv[4]);
  const int64_t threads = argc > 5 ? std::atoll(argv[5]) : 2;
  const int reps = argc > 6 ? std::atoi(argv[6]) : 20;

  std::mt19937 gen(0);
  std::uniform_real_distribution<float> uniform(0.f, 1.f);
  std::normal_distribution<float> normal;
  std::vector<float> data;
  std::vector<int32_t> col_indices, row_offsets{0};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      if (uniform(gen) >= sparsity) {
        data.push_back(normal(gen));
        col_indices.push_back(static_cast<int32_t>(c));
      }
    }
    row_offsets.push_back(static_cast<int32_t>(data.size()));
  }
  const int64_t nnz = data.size();
  std::vector<float> rhs(cols * n), out(rows * n);
  for (auto& v : rhs) v = normal(gen);

  PoolExecutor executor(threads - 1);
  using Value = jsparse::NativeValue<float>;
  auto call = [&] {
    const std::string error = jsparse::CsrSpmm<Value, int32_t>(
        executor, data.data(), col_indices.data(), row_offsets.data(), rows, cols, nnz,
        rhs.data(), n, out.data());
    if (!error.empty()) {
      std::fprintf(stderr, "error: %s\n", error.c_str());
      std::exit(1);
    }
  };
  call();
  double worst = 0;
  for (int64_t r = 0; r < rows; r += std::max<int64_t>(1, rows / 64)) {
    for (int64_t j = 0; j < n; ++j) {
      double expected = 0, scale = 0;
      for (int64_t p = row_offsets[r]; p < row_offsets[r + 1]; ++p) {
        const double term = double(data[p]) * rhs[col_indices[p] * n + j];
        expected += term;
        scale += std::abs(term);
      }
      worst = std::max(worst, std::abs(out[r * n + j] - expected) / (scale + 1e-30));
    }
  }
  auto thread_seconds = [] {
    timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return now.tv_sec + 1e-9 * now.tv_nsec;
  };
  std::vector<double> times, cpu_times;
  for (int i = 0; i < reps; ++i) {
    const double c0 = thread_seconds();
    const auto t0 = std::chrono::steady_clock::now();
    call();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    cpu_times.push_back(thread_seconds() - c0);
  }
  std::sort(times.begin(), times.end());
  std::sort(cpu_times.begin(), cpu_times.end());
  const double median = times[times.size() / 2];
  if (threads == 1) std::printf("thread cpu median %.3f ms; ", 1e3 * cpu_times[reps / 2]);
  std::printf("%lldx%lld s=%.3f N=%lld nnz=%lld threads=%lld: median %.3f ms, best %.3f ms, "
              "%.1f GFLOP/s, max error/scale %.2e\n",
              (long long)rows, (long long)cols, sparsity, (long long)n, (long long)nnz,
              (long long)threads, 1e3 * median, 1e3 * times[0], 2.0 * nnz * n / median / 1e9,
              worst);
  return worst < 1e-5 ? 0 : 1;
}
