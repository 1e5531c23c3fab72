// Unstructured sparse weights (jsparse.Tiled, 16x64 tiles) times 1-4 columns on the CUDA cores,
// as an XLA FFI custom call (platform "CUDA"): LLM decoding at batch 1-4.
//
// Why not the tensor cores here (TiledMmaKernel in sparse_mma_ffi.cu): an mma fragment needs
// every element of a 16x64 tile expanded, 16 fragment pairs a lane whatever the density, and
// Nsight Compute showed that kernel bound by issuing those instructions at N = 1 (363 warp
// instructions a tile, 79% of issue slots busy on the H100). On the CUDA cores a product costs
// per stored value, not per element: one column needs one FMA a value.
//
// Layout of W (jsparse.Tiled, see jsparse/formats/tiled.py): Mt x Kt tiles of 16 x 64, tile
// (i, j) at i * Kt + j; bitmaps uint32 [Mt, Kt, 16, 2] (row r's columns 32 w + b at bit b of
// word w); row_offsets int32 [Mt, Kt, 16], the place in ``data`` of each tile row's first value;
// data [nse] bfloat16/float16, a row's values in column order.
//
// The kernel: lane l of a warp owns word l of a tile (row l / 2, columns 32 (l % 2) ..
// 32 (l % 2) + 31) and walks its set bits from the highest, reading its values two at a time
// (one 4-byte load from the L1 cache a pair, issued a step ahead of its use) and multiplying
// each by x's value at its column: staged in shared memory as float32 or 16-bit, or read from
// global memory (``x_source``). A block of ``warps`` warps computes ``m_tiles`` row tiles
// (warps / m_tiles warps a row tile, taking its K tiles in turn) for one split of K (grid.y),
// and sums its warps' rows in shared memory. Each warp loads its next tile's bitmap word and
// row start one tile ahead. Slower on the H100, and removed (experiments/results/
// h100-2026-11-27-tiled-gemv-variants/): prefetching the next tile's values into L1 or L2
// (also with the row starts loaded two tiles ahead, so that no prefetch waits on a load);
// copying them into shared memory with cp.async two tiles ahead (the copies' ~50 instructions
// a tile cost more than the DRAM latency they hid); finding a word's start from the tile's
// first row offset and a warp scan of the words' bit counts (one offset read a tile, not 16).
//
// What bounds it (H100, 70% sparsity, Nsight Compute): ~290 warp instructions a tile with x's
// staging and the epilogue (23 a pair of values in the loop), 66-68% of issue slots busy, and
// 23 of a warp's 32 lanes active on average, since a warp runs as many trips as its fullest
// word needs (experiments/results/h100-2026-11-27-tiled-gemv-variants/ncu-final/).
//
// x: [K, N]; out: [M, N] of x's dtype, or with k_splits > 1 float32 partial sums
// [k_splits, M, N] (the caller adds them).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "tiled_operands.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Warps a block: up to 32 at one column (a wide weight's few row tiles then fill the GPU
// without splitting K), 16 at 2-4 (their registers).
template <int kN>
__host__ __device__ constexpr int MaxWarps() { return kN == 1 ? 32 : 16; }

template <bool kBf16>
__device__ __forceinline__ float LowValue(uint32_t pair) {
  if constexpr (kBf16) return __uint_as_float(pair << 16);
  else return __half2float(__ushort_as_half(static_cast<unsigned short>(pair & 0xffffu)));
}

template <bool kBf16>
__device__ __forceinline__ float HighValue(uint32_t pair) {
  if constexpr (kBf16) return __uint_as_float(pair & 0xffff0000u);
  else return __half2float(__ushort_as_half(static_cast<unsigned short>(pair >> 16)));
}

template <bool kBf16>
__device__ __forceinline__ uint16_t FromFloat(float value) {
  if constexpr (kBf16) return __bfloat16_as_ushort(__float2bfloat16_rn(value));
  else return __half_as_ushort(__float2half_rn(value));
}

// The place of the highest set bit of a nonzero word (one instruction: FLO).
__device__ __forceinline__ int HighestBit(uint32_t word) {
  int bit;
  asm("bfind.u32 %0, %1;" : "=r"(bit) : "r"(word));
  return bit;
}

// 1 << bit in one instruction (BMSK), with no register holding the constant 1: under the
// register cap nvcc rematerialized that constant in the loop, once a value.
__device__ __forceinline__ uint32_t BitMask(int bit) {
  uint32_t mask;
  asm("bmsk.clamp.b32 %0, %1, 1;" : "=r"(mask) : "r"(bit));
  return mask;
}

// x's staging in shared memory, as float32 or (kHalf) in x's 16-bit dtype, a tile's 64 columns
// at a time: word 0's 32 columns, then word 1's 16 banks further on (64 bytes of padding where
// a word's columns fill a multiple of 32 banks), so that a lane of word 0 and one of word 1
// reading the same bit's column hit different banks; each column's kN values together. (Half
// the bytes: more blocks an SM where x's staging bounds them, for one conversion a value read.)
template <int kN, bool kHalf>
struct XStage {
  static constexpr int kElement = kHalf ? 2 : 4;  // bytes
  static constexpr int kColumn = kN * kElement;  // bytes a column
  static constexpr int kWordBytes =  // from word 0's columns to word 1's
      32 * kColumn + ((32 * kColumn) % 128 == 0 ? 64 : 0);
  static constexpr int kTileBytes = 2 * kWordBytes;
  __device__ static int Place(int column) {  // byte offset of a column within the split
    return (column >> 6) * kTileBytes + ((column >> 5) & 1) * kWordBytes + (column & 31) * kColumn;
  }
};

// x's kN values at one column, as float32.
template <int kN>
struct Column {
  float v[kN];
};

// Where x's values are read from (the launch's ``x_source``): staged in shared memory as
// float32 or in x's 16-bit dtype, or straight from global memory through the L1 cache (one
// column only: no staging, no barrier before the first tile).
constexpr int kXFloat = 0, kXHalf = 1, kXGlobal = 2;

// x's value at bit ``bit`` of a word whose columns start at generic address ``word`` (global).
template <bool kBf16, int kN, int kX>
__device__ __forceinline__ Column<kN> LoadColumn(uint64_t word, int bit) {
  static_assert(kX == kXGlobal && kN == 1, "x read from global memory: one column");
  Column<kN> c;
  c.v[0] = LowValue<kBf16>(__ldg(reinterpret_cast<const unsigned short*>(word) + bit));
  return c;
}

// x's kN staged values at bit ``bit`` of a word whose columns start at 32-bit shared address
// ``word`` (one load: ld.shared of 2-16 bytes).
template <bool kBf16, int kN, int kX>
__device__ __forceinline__ Column<kN> LoadColumn(uint32_t word, int bit) {
  constexpr bool kHalf = kX == kXHalf;
  Column<kN> c;
  const uint32_t address = word + static_cast<uint32_t>(bit) * XStage<kN, kHalf>::kColumn;
  if constexpr (kHalf) {
    uint32_t raw[(kN + 1) / 2];
    if constexpr (kN == 4)
      asm volatile("ld.shared.v2.u32 {%0, %1}, [%2];" : "=r"(raw[0]), "=r"(raw[1]) : "r"(address));
    else if constexpr (kN == 2)
      asm volatile("ld.shared.u32 %0, [%1];" : "=r"(raw[0]) : "r"(address));
    else
      asm volatile("ld.shared.u16 %0, [%1];" : "=r"(raw[0]) : "r"(address));
#pragma unroll
    for (int n = 0; n < kN; ++n)
      c.v[n] = n % 2 ? HighValue<kBf16>(raw[n / 2]) : LowValue<kBf16>(raw[n / 2]);
  } else if constexpr (kN == 4) {
    asm volatile("ld.shared.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(c.v[0]), "=f"(c.v[1]), "=f"(c.v[2]), "=f"(c.v[3]) : "r"(address));
  } else if constexpr (kN == 2) {
    asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(c.v[0]), "=f"(c.v[1]) : "r"(address));
  } else {
    asm volatile("ld.shared.f32 %0, [%1];" : "=f"(c.v[0]) : "r"(address));
  }
  return c;
}

// Stores x's value ``raw`` (16 bits of x's dtype) at byte ``place`` of the staging.
template <bool kBf16, bool kHalf>
__device__ __forceinline__ void StageValue(unsigned char* xs, int place, uint32_t raw) {
  if constexpr (kHalf) *reinterpret_cast<uint16_t*>(xs + place) = static_cast<uint16_t>(raw);
  else *reinterpret_cast<float*>(xs + place) = LowValue<kBf16>(raw);
}

// Stages x's columns [column0, column0 + columns) (x [K, N], N <= kN) in XStage's layout, zero
// past K and at n >= N. x's elements are read flat, 16 bytes a load where aligned, several
// loads in flight a thread.
template <bool kBf16, int kN, bool kHalf>
__device__ __forceinline__ void StageX(unsigned char* xs, const uint16_t* __restrict__ x,
                                      int column0, int columns, int K, int N) {
  using X = XStage<kN, kHalf>;
  const int valid = max(min(column0 + columns, K) - column0, 0);  // columns inside K
  for (int i = threadIdx.x; i < (columns - valid) * kN; i += blockDim.x)
    StageValue<kBf16, kHalf>(xs, X::Place(valid + i / kN) + (i % kN) * X::kElement, 0u);
  if (N < kN)
    for (int i = threadIdx.x; i < valid * (kN - N); i += blockDim.x)
      StageValue<kBf16, kHalf>(
          xs, X::Place(i / (kN - N)) + (N + i % (kN - N)) * X::kElement, 0u);
  const uint16_t* source = x + static_cast<size_t>(column0) * N;
  const int count = valid * N;  // x's elements to stage, flat: element e is column e / N
  auto put = [&](int e, uint32_t raw) {
    const int column = kN == 1 ? e : e / N, n = kN == 1 ? 0 : e % N;
    StageValue<kBf16, kHalf>(xs, X::Place(column) + n * X::kElement, raw);
  };
  int scalar_from = 0;
  if ((reinterpret_cast<uintptr_t>(source) & 15) == 0) {
    const int vectors = count / 8;
#pragma unroll 4
    for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
      const uint4 q = __ldg(reinterpret_cast<const uint4*>(source) + v);
      const uint32_t words[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) put(8 * v + j, j % 2 ? words[j / 2] >> 16 : words[j / 2]);
    }
    scalar_from = vectors * 8;
  }
#pragma unroll 4
  for (int e = scalar_from + threadIdx.x; e < count; e += blockDim.x) put(e, __ldg(source + e));
}

template <int kN>
__device__ __forceinline__ void Fma(float (&acc)[kN], float value, const Column<kN>& c) {
#pragma unroll
  for (int n = 0; n < kN; ++n) acc[n] = fmaf(value, c.v[n], acc[n]);
}

// One pair's two values at the two highest set bits of ``bits`` (which loses them).
template <bool kBf16, int kN, int kX, typename Word>
__device__ __forceinline__ void AccumulatePair(uint32_t both, uint32_t& bits, Word word,
                                               float (&acc_high)[kN], float (&acc_low)[kN]) {
  const int high = HighestBit(bits);
  bits ^= BitMask(high);
  const int low = HighestBit(bits);
  bits ^= BitMask(low);
  Fma<kN>(acc_high, HighValue<kBf16>(both), LoadColumn<kBf16, kN, kX>(word, high));
  Fma<kN>(acc_low, LowValue<kBf16>(both), LoadColumn<kBf16, kN, kX>(word, low));
}

// Adds one lane's word to its sums: ``bits`` the word (column b of the word at bit b), its
// values data[begin .. end) in column order, ``word`` the 32-bit shared address of x's staged
// columns of the word. The values are read as aligned 4-byte pairs from the highest place
// down, one pair a trip (not unrolled: the lanes' trip counts differ, and an unrolled loop's
// remainder paths diverge; two pairs a trip was slower on the H100); a lone value at either end
// takes its pair's one half. (A pair's other half may lie one value past the array's end,
// inside the allocation's 4-byte alignment.)
template <bool kBf16, int kN, int kX, typename Word>
__device__ __forceinline__ void AccumulateWord(const uint32_t* __restrict__ pairs, uint32_t bits,
                                               int begin, int end, Word word,
                                               float (&acc_high)[kN], float (&acc_low)[kN]) {
  // The loads are issued a step ahead of their use: the lone value at the top with the first
  // pair, each later pair while the one before it is multiplied.
  const bool lone_top = (end & 1) && end > begin;  // end - 1 even: the low half of its pair
  const uint32_t top = lone_top ? __ldg(pairs + (end >> 1)) : 0u;
  if (lone_top) --end;
  const uint32_t* pair = pairs + (end >> 1) - 1;  // holds values end - 2 (low) and end - 1
  int left = (end - begin) >> 1;  // whole pairs
  const bool lone_bottom = (end - begin) & 1;  // begin odd: the high half of its pair
  uint32_t both = left > 0 ? __ldg(pair) : 0u;
  if (lone_top) {
    const int bit = HighestBit(bits);
    bits ^= BitMask(bit);
    Fma<kN>(acc_low, LowValue<kBf16>(top), LoadColumn<kBf16, kN, kX>(word, bit));
  }
#pragma unroll 1
  for (; left > 0; --left) {
    const uint32_t current = both;
    --pair;
    if (left > 1 || lone_bottom) both = __ldg(pair);  // the next pair, or the lone value
    AccumulatePair<kBf16, kN, kX>(current, bits, word, acc_high, acc_low);
  }
  if (lone_bottom) {
    if (end - begin == 1) both = __ldg(pair);  // (no pair before it loaded it)
    Fma<kN>(acc_high, HighValue<kBf16>(both), LoadColumn<kBf16, kN, kX>(word, HighestBit(bits)));
  }
}

// Registers capped for 64 warps an SM at one column (two blocks of 32 warps or four of 16; 32
// registers a thread, nvcc spills none), three blocks of 16 at 2-4 columns (40; 12 bytes
// spilled at 32). Uncapped, the staging's unrolled loads took 59, two blocks of 16 an SM.
template <bool kBf16, int kN, int kX>
__global__ void __launch_bounds__(MaxWarps<kN>() * 32, kN == 1 ? 2 : 3)
TiledGemvKernel(const uint16_t* __restrict__ data, const uint32_t* __restrict__ bitmaps,
                const int32_t* __restrict__ row_offsets, const uint16_t* __restrict__ x,
                void* __restrict__ out, int M, int K, int N, int k_tiles, int tiles_per_split,
                int m_tiles) {
  using X = XStage<kN, kX == kXHalf>;
  extern __shared__ __align__(16) unsigned char xs[];  // the split's columns, laid out by X
  __shared__ float partial[MaxWarps<kN>()][16][kN];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int warps = blockDim.x >> 5;
  const int split = blockIdx.y;
  const int tile_begin = split * tiles_per_split;
  const int tile_end = min(tile_begin + tiles_per_split, k_tiles);
  const int per_row = warps / m_tiles;  // the handler checks that m_tiles divides warps
  const int row_tile = blockIdx.x * m_tiles + warp % m_tiles;
  const int row_tiles = (M + 15) >> 4;
  const int first_tile = tile_begin + warp / m_tiles;
  const bool works = row_tile < row_tiles && first_tile < tile_end;
  // Running pointers to the lane's word and row start of the warp's next tile: a tile's step
  // adds a constant. The first tile's are loaded before x is staged, to land meanwhile.
  const size_t first = static_cast<size_t>(row_tile) * k_tiles + first_tile;
  const uint32_t* bitmap = bitmaps + first * 32 + lane;
  const int32_t* row_start = row_offsets + first * 16 + (lane >> 1);
  uint32_t bits = 0u;
  int start = 0;
  if (works) {
    bits = __ldg(bitmap);
    start = __ldg(row_start);
  }
  if constexpr (kX != kXGlobal) {
    StageX<kBf16, kN, kX == kXHalf>(xs, x, tile_begin * 64, max(tile_end - tile_begin, 0) * 64,
                                     K, N);
    __syncthreads();
  }

  const uint32_t* pairs = reinterpret_cast<const uint32_t*>(data);
  float acc_high[kN], acc_low[kN];
#pragma unroll
  for (int n = 0; n < kN; ++n) acc_high[n] = acc_low[n] = 0.f;
  if (works) {
    // The address of x's columns of the lane's word: 32-bit shared, or generic (global).
    using Word = std::conditional_t<kX == kXGlobal, uint64_t, uint32_t>;
    Word word, word_step;
    if constexpr (kX == kXGlobal) {
      word = reinterpret_cast<uint64_t>(x + first_tile * 64 + (lane & 1) * 32);
      word_step = per_row * 64 * sizeof(uint16_t);
    } else {
      word = static_cast<uint32_t>(__cvta_generic_to_shared(
          xs + X::Place((first_tile - tile_begin) * 64 + (lane & 1) * 32)));
      word_step = per_row * X::kTileBytes;
    }
    for (int left = (tile_end - 1 - first_tile) / per_row; left >= 0; --left) {
      uint32_t next_bits = 0u;
      int next_start = 0;
      if (left > 0) {  // the warp's next tile: its word and row start
        bitmap += per_row * 32;
        row_start += per_row * 16;
        next_bits = __ldg(bitmap);
        next_start = __ldg(row_start);
      }
      // The row's start, plus its first word's count for its second word.
      const uint32_t partner = __shfl_xor_sync(0xffffffffu, bits, 1);
      const int begin = start + ((lane & 1) ? __popc(partner) : 0);
      AccumulateWord<kBf16, kN, kX>(pairs, bits, begin, begin + __popc(bits), word, acc_high,
                                    acc_low);
      bits = next_bits;
      start = next_start;
      word += word_step;
    }
  }
  // A row's two lanes, then the warps of a row tile.
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    float sum = acc_high[n] + acc_low[n];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if ((lane & 1) == 0) partial[warp][lane >> 1][n] = sum;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < m_tiles * 16 * N; i += blockDim.x) {
    const int mt = i / (16 * N), r = (i / N) % 16, n = i % N;
    const int row = (blockIdx.x * m_tiles + mt) * 16 + r;
    if (row >= M) continue;
    float sum = 0.f;
    for (int w = mt; w < warps; w += m_tiles) sum += partial[w][r][n];
    if (gridDim.y == 1)
      static_cast<uint16_t*>(out)[static_cast<size_t>(row) * N + n] = FromFloat<kBf16>(sum);
    else
      static_cast<float*>(out)[(static_cast<size_t>(split) * M + row) * N + n] = sum;
  }
}

struct GemvLaunch {
  const void* data;
  const void* bitmaps;
  const void* row_offsets;
  const void* x;
  void* out;
  int m, k, n, k_tiles, warps, m_tiles, k_splits, x_source;
};

template <bool kBf16, int kN, int kX>
cudaError_t RunGemv(cudaStream_t stream, const GemvLaunch& l) {
  auto kernel = TiledGemvKernel<kBf16, kN, kX>;
  const size_t shared = kX == kXGlobal ? 0 :
      static_cast<size_t>((l.k_tiles + l.k_splits - 1) / l.k_splits) *
      XStage<kN, kX == kXHalf>::kTileBytes;
  if (shared > 48 * 1024) {
    const cudaError_t error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (error != cudaSuccess) return error;
  }
  const int row_tiles = (l.m + 15) / 16;
  const int blocks = (row_tiles + l.m_tiles - 1) / l.m_tiles;
  const int tiles_per_split = (l.k_tiles + l.k_splits - 1) / l.k_splits;
  kernel<<<dim3(blocks, l.k_splits), l.warps * 32, shared, stream>>>(
      static_cast<const uint16_t*>(l.data), static_cast<const uint32_t*>(l.bitmaps),
      static_cast<const int32_t*>(l.row_offsets), static_cast<const uint16_t*>(l.x), l.out, l.m,
      l.k, l.n, l.k_tiles, tiles_per_split, l.m_tiles);
  return cudaGetLastError();
}

template <bool kBf16, int kN>
cudaError_t BySource(cudaStream_t stream, const GemvLaunch& l) {
  if constexpr (kN == 1)
    if (l.x_source == kXGlobal) return RunGemv<kBf16, kN, kXGlobal>(stream, l);
  return l.x_source == kXHalf ? RunGemv<kBf16, kN, kXHalf>(stream, l)
                              : RunGemv<kBf16, kN, kXFloat>(stream, l);
}

template <bool kBf16>
cudaError_t ByColumns(cudaStream_t stream, const GemvLaunch& l) {
  if (l.n == 1) return BySource<kBf16, 1>(stream, l);
  if (l.n == 2) return BySource<kBf16, 2>(stream, l);
  return BySource<kBf16, 4>(stream, l);
}

ffi::Error Invalid(const std::string& message) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jsparse tiled_gemv: " + message);
}

// The bytes of shared memory x's staging takes a K tile: XStage's, for the kernel instance that
// BySource picks (N = 3 runs the 4-column one).
template <bool kHalf>
size_t StagedTileBytes(int64_t n) {
  return n == 1 ? XStage<1, kHalf>::kTileBytes : n == 2 ? XStage<2, kHalf>::kTileBytes
                                                        : XStage<4, kHalf>::kTileBytes;
}

ffi::Error TiledGemvImpl(cudaStream_t stream, ffi::AnyBuffer data, ffi::AnyBuffer bitmaps,
                         ffi::AnyBuffer row_offsets, ffi::AnyBuffer x,
                         ffi::Result<ffi::AnyBuffer> out, int64_t m, int64_t k, int64_t m_tiles,
                         int64_t warps, int64_t k_splits, int64_t x_source) {
  if (m < 1 || k < 1) return Invalid("bad shape: M and K must be >= 1");
  const ffi::DataType dtype = x.element_type();
  if (dtype != ffi::DataType::BF16 && dtype != ffi::DataType::F16)
    return Invalid("x must be bfloat16 or float16");
  if (const std::string problem =
          jsparse_tiled::WeightProblem(data, bitmaps, row_offsets, dtype, m, k);
      !problem.empty())
    return Invalid(problem);
  const auto x_dims = x.dimensions();
  if (x_dims.size() != 2 || x_dims[0] != k)
    return Invalid("x must be [K, N] with K = " + std::to_string(k));
  const int64_t n = x_dims[1];
  if (n < 1 || n > 4) return Invalid("N must be 1..4, got " + std::to_string(n));
  if (warps < 1 || warps > (n == 1 ? 32 : 16))
    return Invalid("warps must be 1..32 at N = 1, 1..16 at N = 2..4, got " +
                   std::to_string(warps));
  if (m_tiles < 1 || warps % m_tiles)
    return Invalid("m_tiles must divide warps, got m_tiles = " + std::to_string(m_tiles) +
                   ", warps = " + std::to_string(warps));
  if (k_splits < 1 || k_splits > 64) return Invalid("k_splits must be 1..64");
  if (x_source < kXFloat || x_source > kXGlobal) return Invalid("x_source must be 0, 1 or 2");
  if (x_source == kXGlobal && n != 1)
    return Invalid("x read from global memory (x_source 2) needs N = 1, got " +
                   std::to_string(n));
  const bool split = k_splits > 1;
  if (out->element_type() != (split ? ffi::DataType::F32 : dtype))
    return Invalid(split ? "out must be float32 when K is split" : "out must have x's dtype");
  if (out->element_count() != static_cast<size_t>(k_splits * m * n))
    return Invalid("out has the wrong size");
  if (reinterpret_cast<uintptr_t>(data.untyped_data()) % 4)
    return Invalid("data must be 4-byte aligned (values are read in pairs)");
  const int64_t k_tiles = (k + 63) / 64;
  const int64_t tiles_per_split = (k_tiles + k_splits - 1) / k_splits;
  const size_t shared = x_source == kXGlobal ? 0 :
      static_cast<size_t>(tiles_per_split) *
      (x_source == kXHalf ? StagedTileBytes<true>(n) : StagedTileBytes<false>(n));
  constexpr size_t kMaxShared = 227 * 1024 - 16 * 16 * 4 * 4;  // less the partials (N > 1)
  if (shared > kMaxShared)
    return Invalid("a split of K stages " + std::to_string(shared) + " bytes of x, more than " +
                   std::to_string(kMaxShared) + ": use more k_splits");
  const GemvLaunch launch{data.untyped_data(), bitmaps.untyped_data(), row_offsets.untyped_data(),
                          x.untyped_data(), out->untyped_data(), static_cast<int>(m),
                          static_cast<int>(k), static_cast<int>(n), static_cast<int>(k_tiles),
                          static_cast<int>(warps), static_cast<int>(m_tiles),
                          static_cast<int>(k_splits), static_cast<int>(x_source)};
  const cudaError_t error = dtype == ffi::DataType::BF16 ? ByColumns<true>(stream, launch)
                                                         : ByColumns<false>(stream, launch);
  if (error != cudaSuccess)
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("tiled gemv launch failed: ") + cudaGetErrorString(error));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseTiledGemv, TiledGemvImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("m_tiles")
                                  .Attr<int64_t>("warps")
                                  .Attr<int64_t>("k_splits")
                                  .Attr<int64_t>("x_source"),
                              {ffi::Traits::kCmdBufferCompatible});
