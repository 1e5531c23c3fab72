// 2:4 sparse x skinny dense products (LLM decoding, N <= 32) on the sparse tensor cores through
// warp-level `mma.sp` (sm_80+; Hopper runs it), as an XLA FFI custom call (platform "CUDA").
//
// Pallas cannot emit `mma.sp` (BUILD_NOTES.md, "GPU: sparse tensor cores from Pallas"), and
// cuSPARSELt's kernels are slower than dense at N <= 16. Decoding is memory-bound: what matters
// is streaming the weight's bytes (half the values plus 4 bits of positions a group of 4) at
// the copy bandwidth, with little arithmetic between loads. Here the weight is stored once in
// the registers' order (jsparse/_gpu/sparse_mma.py, `pack`), so each lane loads its operands
// of two k32 steps with two 16-byte loads and one metadata word, and the tensor cores do the
// expansion that the Pallas kernels do with selects.
//
// Layouts (W [M, K], 2 kept in every group of 4 along K; Mt = ceil(M / 16) row tiles,
// P = ceil(K / 64) pairs of k32 steps):
//   values uint4 [Mt, P, 2 (step), 32 (lane), 1]: lane (g = lane / 4, t = lane % 4) holds the
//     A fragment of mma.m16n8k32: word 0 row g group t, word 1 row g + 8 group t, word 2 row g
//     group t + 4, word 3 row g + 8 group t + 4 (the step's 8 groups of 4 columns), each word
//     the group's two kept values, the lower position in the low half;
//   meta uint32 [Mt, P, 32]: lanes t = 0, 1 of each quad hold step 0's metadata (sparsity
//     selector 0), lanes t = 2, 3 step 1's (selector 1), in the order jsparse/formats/mma_nm.py `pack` writes;
//   x: [K, N] (layout 0) or [N, K] (layout 1, "tokens-major": a layer's activations);
//   out: [M, N] (layout 0) or [N, M] (layout 1); one dtype for W, x and out (bfloat16 or
//   float16), float32 accumulation.
// A block of `warps` warps computes `m_tiles` row tiles; its warps split the K pairs and sum
// their partial tiles in shared memory. `staged` (-1: where x's rows are 16-byte aligned)
// routes x through shared memory (see Stage).
//
// The second handler (JsparseTiledMmaMatmul, TiledMmaKernel below) multiplies unstructured
// weights held as jsparse.Tiled (16x64 tiles) on the dense tensor cores, with the same staging
// and epilogue; groups of warps may share x's staged columns (``x_sharing``). Built by `python -m jsparse._gpu.sparse_mma build` (nvcc) on a CUDA machine;
// never in CI.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "tiled_operands.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Metadata of an all-zero padding group: positions 0 and 1 (0b0100 a group), a valid pattern.
constexpr uint32_t kPaddingMeta = 0x44444444u;

template <bool kBf16, int kSelector>
__device__ __forceinline__ void MmaSp(float (&d)[4], const uint4& a, const uint32_t (&b)[4],
                                      uint32_t e) {
  if constexpr (kBf16) {
    asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, %13;"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]),
          "r"(e), "n"(kSelector));
  } else {
    asm("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, %13;"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]),
          "r"(e), "n"(kSelector));
  }
}

// x[n, k] and x[n, k + 1] as one word (k in the low half); 0 outside [N, K].
template <bool kTokensMajor>
__device__ __forceinline__ uint32_t LoadPair(const uint16_t* __restrict__ x, int n, int k, int K,
                                             int N) {
  if (n >= N || k >= K) return 0u;
  if constexpr (kTokensMajor) {
    return __ldg(reinterpret_cast<const uint32_t*>(x + static_cast<size_t>(n) * K + k));
  } else {
    const uint32_t lo = __ldg(x + static_cast<size_t>(k) * N + n);
    const uint32_t hi = __ldg(x + static_cast<size_t>(k + 1) * N + n);
    return lo | (hi << 16);
  }
}

template <bool kBf16>
__device__ __forceinline__ uint16_t Store16(float value) {
  if constexpr (kBf16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(value));
  } else {
    return __half_as_ushort(__float2half_rn(value));
  }
}

// Staging (the "staged" launches): x's 64 columns of a pair go through a per-warp shared buffer,
// copied in with 16-byte loads and read back as B fragments with ldmatrix (.trans for [K, N]).
// Loading the fragments from global memory directly takes four 4-byte loads a step and an
// n-tile, each touching 8 rows of x: L1 wavefronts, not DRAM, then bound N >= 16.
// Buffer rows: tokens-major, one per column n (64 k + 8 padding); [K, N], one per k (the
// n-tiles' 8 * kNTiles values, padded by 8 when that is not 16 bytes, so that the 8 rows an
// ldmatrix reads fall in distinct banks).
template <int kNTiles, bool kTokensMajor>
struct Stage {
  static constexpr int kRowStride = kTokensMajor ? 64 + 8 : kNTiles * 8 + (kNTiles > 1 ? 8 : 0);
  static constexpr int kElems = (kTokensMajor ? kNTiles * 8 : 64) * kRowStride;
  static constexpr int kPieces = 2 * kNTiles;  // 16-byte pieces a lane copies a pair

  // Piece i of ``lane`` within a K tile: tokens-major, column n = piece / 8 at k offset
  // 8 * (piece % 8); [K, N], row k = piece / kNTiles at columns 8 * (piece % kNTiles).
  __device__ static __forceinline__ void Piece(int i, int lane, int& n, int& k) {
    const int piece = i * 32 + lane;
    n = kTokensMajor ? piece >> 3 : (piece % kNTiles) * 8;
    k = kTokensMajor ? (piece & 7) * 8 : piece / kNTiles;
  }

  // Where piece i of ``lane`` for columns [64 p, 64 p + 64) of x comes from, and whether it lies
  // inside [N, K] (``inside``).
  __device__ static __forceinline__ const uint16_t* Source(const uint16_t* __restrict__ x, int i,
                                                           int lane, int p, int K, int N,
                                                           bool& inside) {
    int n, k;
    Piece(i, lane, n, k);
    k += p * 64;
    inside = n < N && k < K;
    return kTokensMajor ? x + static_cast<size_t>(n) * K + k : x + static_cast<size_t>(k) * N + n;
  }

  // Piece i of ``lane`` (zeros outside [N, K] or when not ``live``).
  __device__ static __forceinline__ uint4 Load(const uint16_t* __restrict__ x, int i, int lane,
                                               int p, int K, int N, bool live) {
    bool inside;
    const uint16_t* source = Source(x, i, lane, p, K, N, inside);
    return live && inside ? __ldg(reinterpret_cast<const uint4*>(source))
                          : make_uint4(0, 0, 0, 0);
  }

  // Piece i of ``lane`` in K tile 0, for a loop that advances it a K tile at a time by
  // ``StepElems(N)``: its element offset in x (-1 where its column n >= N) and its k (a piece
  // of K tile p is inside [N, K] iff its offset is >= 0 and its k < K - 64 p). 32-bit offsets:
  // the handler keeps x below 2^31 elements.
  __device__ static __forceinline__ void FirstPiece(int i, int lane, int K, int N, int& offset,
                                                    int& k) {
    int n;
    Piece(i, lane, n, k);
    offset = n >= N ? -1 : kTokensMajor ? n * K + k : k * N + n;
  }

  __device__ static __forceinline__ int StepElems(int N) { return kTokensMajor ? 64 : 64 * N; }

  // The tiled kernel's staged x: tokens-major, a row for each of the N columns that exist (at
  // most kNTiles * 8; FragmentOffset's rows past them read the last); in elements.
  __host__ __device__ static __forceinline__ int TiledColumns(int N) {
    return N < kNTiles * 8 ? N : kNTiles * 8;
  }
  __host__ __device__ static __forceinline__ int TiledElems(int N) {
    return kTokensMajor ? TiledColumns(N) * kRowStride : kElems;
  }

  // Where piece i of ``lane`` goes in the buffer (elements).
  __device__ static __forceinline__ int StoreOffset(int i, int lane) {
    const int piece = i * 32 + lane;
    return kTokensMajor ? (piece >> 3) * kRowStride + (piece & 7) * 8
                        : (piece / kNTiles) * kRowStride + (piece % kNTiles) * 8;
  }

  // The row ``lane`` gives ldmatrix.x4 for k32 step s and n-tile nt: row (lane % 8) of matrix
  // (lane / 8) = k block 8 j of the step; register j then holds x[n = g][k = 8 j + 2 t, + 1].
  // Tokens-major, columns past ``columns`` read the last one (its products reach only outputs
  // never stored).
  __device__ static __forceinline__ int FragmentOffset(int s, int nt, int lane,
                                                       int columns = kNTiles * 8) {
    const int row = lane & 7, block = lane >> 3;
    return kTokensMajor ? min(nt * 8 + row, columns - 1) * kRowStride + s * 32 + block * 8
                        : (s * 32 + block * 8 + row) * kRowStride + nt * 8;
  }
};

__device__ __forceinline__ void LdMatrix(uint32_t (&b)[4], const uint16_t* row, bool trans) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(row));
  if (trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(address));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3]) : "r"(address));
  }
}

// The block's warps' [kMTiles * 16, kNTiles * 8] tiles summed in shared memory (``partial``:
// [warps][rows][cols] floats) and written to out rows row0.. (< M), columns < N: [M, N], or
// [N, M] tokens-major; ``Out`` uint16_t (x's dtype) or float (a split of K's partial sums).
// C fragment: acc[.][.][0, 1] at row g, columns 2t, 2t + 1; [2, 3] at row g + 8.
// With ``kGroup`` > 1, warp w holds rows [(w % kGroup) * kMTiles * 16, + kMTiles * 16) of the
// block's kGroup * kMTiles * 16, and the warps w / kGroup = 0, 1, .. (K splits) are summed.
template <bool kBf16, int kMTiles, int kNTiles, bool kTokensMajor, typename Out = uint16_t,
          int kGroup = 1>
__device__ __forceinline__ void ReduceAndStore(const float (&acc)[kMTiles][kNTiles][4],
                                               float* partial, Out* __restrict__ out,
                                               int row0, int M, int N) {
  constexpr int kRows = kMTiles * 16 * kGroup, kCols = kNTiles * 8;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  float* mine = partial + warp * (kRows / kGroup) * kCols;  // its rows of group warp / kGroup
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i)
        mine[(mt * 16 + g + 8 * (i >> 1)) * kCols + nt * 8 + 2 * t + (i & 1)] = acc[mt][nt][i];
  __syncthreads();
  for (int i = threadIdx.x; i < kRows * kCols; i += blockDim.x) {
    // Rows fastest for the [N, M] output (coalesced along M), columns fastest for [M, N].
    const int r = kTokensMajor ? i % kRows : i / kCols;
    const int c = kTokensMajor ? i / kRows : i % kCols;
    const int row = row0 + r;
    if (row >= M || c >= N) continue;
    float sum = 0.f;
    for (int w = 0; w < warps / kGroup; ++w) sum += partial[(w * kRows + r) * kCols + c];
    Out& place =
        out[kTokensMajor ? static_cast<size_t>(c) * M + row : static_cast<size_t>(row) * N + c];
    if constexpr (sizeof(Out) == 2) place = Store16<kBf16>(sum); else place = sum;
  }
}

constexpr int kUnroll = 2;  // pairs loaded before their products

template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor, bool kStaged>
__global__ void SparseMmaKernel(const uint4* __restrict__ values,
                                const uint32_t* __restrict__ meta,
                                const uint16_t* __restrict__ x, uint16_t* __restrict__ out, int M,
                                int K, int N, int P, int pairs_per_warp) {
  using S = Stage<kNTiles, kTokensMajor>;
  // [warps][kMTiles * 16][kNTiles * 8] float partial tiles, then (staged) [warps][kUnroll][S]
  extern __shared__ __align__(16) unsigned char shared[];
  constexpr int kRows = kMTiles * 16, kCols = kNTiles * 8;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int m_tiles = (M + 15) >> 4;
  const int tile0 = blockIdx.x * kMTiles;
  float* partial = reinterpret_cast<float*>(shared);
  uint16_t* stage = reinterpret_cast<uint16_t*>(shared + warps * kRows * kCols * sizeof(float)) +
                    warp * kUnroll * S::kElems;

  float acc[kMTiles][kNTiles][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  const int p_begin = warp * pairs_per_warp;
  const int p_end = min(P, p_begin + pairs_per_warp);
  for (int p0 = p_begin; p0 < p_end; p0 += kUnroll) {
    uint4 a[kUnroll][kMTiles][2];
    uint32_t e[kUnroll][kMTiles];
    uint32_t b[kUnroll][2][kNTiles][4];
    uint4 pieces[kUnroll][kStaged ? S::kPieces : 1];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int p = p0 + u;
      const bool live = p < p_end;
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        // A tile past the last is a copy of the last; its rows are not written.
        const size_t base = static_cast<size_t>(min(tile0 + mt, m_tiles - 1)) * P + p;
#pragma unroll
        for (int s = 0; s < 2; ++s)
          a[u][mt][s] = live ? __ldg(values + (base * 2 + s) * 32 + lane) : make_uint4(0, 0, 0, 0);
        e[u][mt] = live ? __ldg(meta + base * 32 + lane) : kPaddingMeta;
      }
      if constexpr (kStaged) {
#pragma unroll
        for (int i = 0; i < S::kPieces; ++i) pieces[u][i] = S::Load(x, i, lane, p, K, N, live);
      } else {
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
            for (int j = 0; j < 4; ++j)
              b[u][s][nt][j] =
                  live ? LoadPair<kTokensMajor>(x, nt * 8 + g, p * 64 + s * 32 + 2 * t + 8 * j,
                                                K, N)
                       : 0u;
      }
    }
    if constexpr (kStaged) {
      __syncwarp();  // the last iteration's ldmatrix reads are done
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int i = 0; i < S::kPieces; ++i)
          *reinterpret_cast<uint4*>(stage + u * S::kElems + S::StoreOffset(i, lane)) =
              pieces[u][i];
      __syncwarp();
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int s = 0; s < 2; ++s)
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt)
            LdMatrix(b[u][s][nt], stage + u * S::kElems + S::FragmentOffset(s, nt, lane),
                     !kTokensMajor);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
          MmaSp<kBf16, 0>(acc[mt][nt], a[u][mt][0], b[u][0][nt], e[u][mt]);
          MmaSp<kBf16, 1>(acc[mt][nt], a[u][mt][1], b[u][1][nt], e[u][mt]);
        }
  }

  ReduceAndStore<kBf16, kMTiles, kNTiles, kTokensMajor>(acc, partial, out, tile0 * 16, M, N);
}

struct Launch {
  const void* values;
  const void* meta;
  const void* x;
  void* out;
  int m, k, n, pairs, warps;
};

template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor, bool kStaged>
cudaError_t Run(cudaStream_t stream, const Launch& l) {
  using S = Stage<kNTiles, kTokensMajor>;
  auto kernel = SparseMmaKernel<kBf16, kNTiles, kMTiles, kTokensMajor, kStaged>;
  const int m_tiles = (l.m + 15) / 16;
  const int blocks = (m_tiles + kMTiles - 1) / kMTiles;
  const int pairs_per_warp = (l.pairs + l.warps - 1) / l.warps;
  const size_t shared =
      static_cast<size_t>(l.warps) *
      (kMTiles * 16 * kNTiles * 8 * sizeof(float) + (kStaged ? kUnroll * S::kElems * 2 : 0));
  if (shared > 48 * 1024) {
    const cudaError_t error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (error != cudaSuccess) return error;
  }
  kernel<<<blocks, l.warps * 32, shared, stream>>>(
      static_cast<const uint4*>(l.values), static_cast<const uint32_t*>(l.meta),
      static_cast<const uint16_t*>(l.x), static_cast<uint16_t*>(l.out), l.m, l.k, l.n, l.pairs,
      pairs_per_warp);
  return cudaGetLastError();
}

template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor>
cudaError_t ByStaging(cudaStream_t stream, const Launch& l, bool staged) {
  return staged ? Run<kBf16, kNTiles, kMTiles, kTokensMajor, true>(stream, l)
                : Run<kBf16, kNTiles, kMTiles, kTokensMajor, false>(stream, l);
}

template <bool kBf16, int kNTiles, int kMTiles>
cudaError_t ByLayout(cudaStream_t stream, const Launch& l, bool tokens_major, bool staged) {
  return tokens_major ? ByStaging<kBf16, kNTiles, kMTiles, true>(stream, l, staged)
                      : ByStaging<kBf16, kNTiles, kMTiles, false>(stream, l, staged);
}

template <bool kBf16, int kNTiles>
cudaError_t ByMTiles(cudaStream_t stream, const Launch& l, bool tokens_major, bool staged,
                     int m_tiles) {
  return m_tiles == 1 ? ByLayout<kBf16, kNTiles, 1>(stream, l, tokens_major, staged)
                      : ByLayout<kBf16, kNTiles, 2>(stream, l, tokens_major, staged);
}

template <bool kBf16>
cudaError_t ByNTiles(cudaStream_t stream, const Launch& l, bool tokens_major, bool staged,
                     int m_tiles) {
  if (l.n <= 8) return ByMTiles<kBf16, 1>(stream, l, tokens_major, staged, m_tiles);
  if (l.n <= 16) return ByMTiles<kBf16, 2>(stream, l, tokens_major, staged, m_tiles);
  return ByMTiles<kBf16, 4>(stream, l, tokens_major, staged, m_tiles);
}

// ---------------------------------------------------------------------------------------------
// Unstructured sparse weights on the dense tensor cores ("load as sparse, compute as dense"),
// reading jsparse.Tiled with 16x64 tiles: data [nse] (values packed tile by tile, row by row,
// in column order; tiles in row-major order, so a tile's values end where the next tile's
// begin), bitmaps uint32 [Mt, Kt, 16, 2] (bit b of word w of a tile row marks column 32 w + b),
// row_offsets int32 [Mt, Kt, 16] (position in data of each tile row's first value; the kernel
// reads each tile's first only).
//
// A block (1-16 warps) takes kMTiles (1, 2 or 4) row tiles and, where K is split over
// gridDim.y blocks (a wide weight's few row tiles then still fill the GPU; each split writes
// float32 partial sums that the caller adds), one split's K tiles; its warps split those. A
// warp walks its K tiles through a ring of kStages shared-memory slots filled by cp.async
// (kStages - 1 tiles in flight while it multiplies one, without holding them in registers). A
// slot holds x's 64 columns (staged as the 2:4 kernel stages them, tokens-major only the N
// that exist; shared by the kMTiles row tiles) and, per row tile, its 16 rows' bitmaps and its packed values (16-byte copies from an
// aligned start). The tiles' starts come from one load per lane (lane l: tile l of the warp's next
// kLanes - 1), so no load waits on another. Each lane then finds its rows' first values by a
// scan of the rows' bit counts, builds its A fragments of the four k16 steps (rows g and g + 8,
// columns 2t, 2t + 1, 2t + 8, 2t + 9 of a step; a value's place in its row is the popc of the
// bits below it) and multiplies on the dense tensor cores (mma.m16n8k16).
// What bounds it: instructions, not bytes. Nsight Compute (H100, 70% sparsity) counted ~440
// warp instructions a tile (experiments/results/h100-2026-11-27-tiled-cpasync/). The N = 1
// launch's SASS loop body is 373 instructions a tile since the copies' issue was cut (it was
// 530), 258 of them after the wait for the copies, mostly the expansion, whatever the density
// (experiments/results/h100-2026-11-27-tiled-issue/sass/).
constexpr int kTileCapacity = 16 * 64;  // the most values a tile holds
constexpr int kBitmapElems = 16 * 2 * 2;  // a tile's bitmaps, in uint16 elements (128 bytes)

template <bool kBf16>
__device__ __forceinline__ void Mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (kBf16) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// 16 bytes from global to shared memory without passing through registers; the bytes past
// ``source_bytes`` (0..16) are zero-filled and not read.
__device__ __forceinline__ void CpAsync16(void* destination, const void* source,
                                          int source_bytes) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(destination));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
               :: "r"(address), "l"(source), "r"(source_bytes) : "memory");
}

// 16 bytes from global to shared memory, all read (no zero fill: no source-size operand).
__device__ __forceinline__ void CpAsync16(void* destination, const void* source) {
  const uint32_t address = static_cast<uint32_t>(__cvta_generic_to_shared(destination));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
               :: "r"(address), "l"(source) : "memory");
}

__device__ __forceinline__ void CpAsyncCommit() {
  asm volatile("cp.async.commit_group;" ::: "memory");
}

// Waits at named barrier ``id`` (1..15; 0 is __syncthreads') for ``threads`` threads (whole
// warps) of the block.
__device__ __forceinline__ void GroupBarrier(int id, unsigned threads) {
  asm volatile("bar.sync %0, %1;" :: "r"(id), "r"(threads) : "memory");
}

// Waits until at most kPending of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;" :: "n"(kPending) : "memory");
}

// The two values of a row at bit positions kC, kC + 1 of ``bits`` (zero where the bit is
// clear), ``bits`` shifted so that bit 0 is the lane's first column (2t) and ``row`` pointing at
// the row's first value at or after it: the masks and shifts are constants. The halves are
// joined by one byte permute (prmt), not a shift and an or.
template <int kC>
__device__ __forceinline__ uint32_t RowPair(const uint16_t* row, uint32_t bits) {
  const int below = kC ? __popc(bits & ((1u << kC) - 1u)) : 0;
  const uint32_t first = (bits >> kC) & 1u, second = (bits >> (kC + 1)) & 1u;
  const uint16_t* place = row + below;
  const uint32_t lo = first ? place[0] : 0u;
  const uint32_t hi = second ? place[first] : 0u;
  return __byte_perm(lo, hi, 0x5410);
}

// RowPair for values in shared memory, from the 32-bit shared address of ``row``'s first value:
// the loads and their predicates in PTX, each address one multiply-add from the row's.
template <int kC>
__device__ __forceinline__ uint32_t RowPairShared(uint32_t row, uint32_t bits) {
  const uint32_t place = row + (kC ? 2u * __popc(bits & ((1u << kC) - 1u)) : 0u);
  const uint32_t next = place + 2u * ((bits >> kC) & 1u);
  uint32_t lo = 0u, hi = 0u;
  asm volatile(
      "{ .reg .pred p, q; .reg .b32 t;\n"
      " and.b32 t, %2, %4; setp.ne.b32 p, t, 0;\n"
      " and.b32 t, %2, %5; setp.ne.b32 q, t, 0;\n"
      " @p ld.shared.u16 %0, [%3];\n"
      " @q ld.shared.u16 %1, [%6];\n}"
      : "+r"(lo), "+r"(hi)
      : "r"(bits), "r"(place), "n"(1u << kC), "n"(2u << kC), "r"(next));
  return __byte_perm(lo, hi, 0x5410);
}

// A row tile's A fragments of one 32-column word (``half``) of its 16x64 tile: ``values`` the
// tile's packed values (in shared memory, or in global memory for a tile past the slot's
// capacity), ``bits_*`` the lane's rows' words shifted by 2t and ``row_*`` the place of each
// row's first value at or after column 2t.
__device__ __forceinline__ void ExpandWord(const uint16_t* values, uint32_t bits_low,
                                           uint32_t bits_high, int row_low, int row_high,
                                           uint32_t (&a0)[4], uint32_t (&a1)[4]) {
  const uint16_t* low = values + row_low;
  const uint16_t* high = values + row_high;
  a0[0] = RowPair<0>(low, bits_low);
  a0[1] = RowPair<0>(high, bits_high);
  a0[2] = RowPair<8>(low, bits_low);
  a0[3] = RowPair<8>(high, bits_high);
  a1[0] = RowPair<16>(low, bits_low);
  a1[1] = RowPair<16>(high, bits_high);
  a1[2] = RowPair<24>(low, bits_low);
  a1[3] = RowPair<24>(high, bits_high);
}

// ExpandWord for values in shared memory at 32-bit shared address ``values``. (One template
// for both forms compiled the C++-load kernels' loops longer: N = 1 364 -> 369 instructions.)
__device__ __forceinline__ void ExpandWordShared(uint32_t values, uint32_t bits_low,
                                                 uint32_t bits_high, int row_low, int row_high,
                                                 uint32_t (&a0)[4], uint32_t (&a1)[4]) {
  const uint32_t low = values + 2u * row_low, high = values + 2u * row_high;
  a0[0] = RowPairShared<0>(low, bits_low);
  a0[1] = RowPairShared<0>(high, bits_high);
  a0[2] = RowPairShared<8>(low, bits_low);
  a0[3] = RowPairShared<8>(high, bits_high);
  a1[0] = RowPairShared<16>(low, bits_low);
  a1[1] = RowPairShared<16>(high, bits_high);
  a1[2] = RowPairShared<24>(low, bits_low);
  a1[3] = RowPairShared<24>(high, bits_high);
}

// ``capacity``: the values a row tile's slot holds (a multiple of 8, at most kTileCapacity); its
// slot is kBitmapElems + capacity + 8 elements (the copy starts at the 8-aligned place at or
// before the tile's first value). A tile holding more is not copied: its warp reads its values
// from global memory (slower, still right), so a capacity sized to a matrix's typical tile
// trades nothing but speed for the shared memory it saves. Only four-row-tile launches
// (kBounded) take a capacity below a full tile: the fallback's second copy of the expansion
// cost one- and two-row-tile launches 4-7% (H100), where smaller slots gained nothing.
//
// ``kGroup`` > 1 ([K, N] x, two or three slots): the block's warps form groups of kGroup that
// take the same K tiles for kGroup different row-tile sets and stage x's columns once for the
// group, each warp copying 1 / kGroup of the pieces; the group meets at a named barrier once a
// step (after its copies landed, before the slot read last step is refilled). At N >= 16 x's
// staging, not W's bytes, is most of what a tile copies (stop 31: one row tile a block took
// 1.5x the time of two); sharing it cuts those copies by kGroup.
template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor, int kStages, int kGroup = 1>
__global__ void TiledMmaKernel(const uint16_t* __restrict__ data,
                               const uint32_t* __restrict__ bitmaps,
                               const int32_t* __restrict__ row_offsets,
                               const uint16_t* __restrict__ x, void* __restrict__ out, int M,
                               int K, int N, int k_tiles, int tiles_per_group, int64_t nse,
                               int capacity, int tiles_per_split) {
  using S = Stage<kNTiles, kTokensMajor>;
  static_assert(kGroup == 1 || (kStages >= 2 && !kTokensMajor),
                "x shared by a group of warps: [K, N] x, two slots or more");
  constexpr int kXPieces = (S::kPieces + kGroup - 1) / kGroup;  // x's pieces a lane copies
  constexpr bool kBounded = kMTiles == 4;
  const int tile_slot = kBitmapElems + (kBounded ? capacity : kTileCapacity) + 8;  // uint16s
  const int x_elems = S::TiledElems(N);  // x's staged columns
  const int w_elems = kMTiles * tile_slot;  // a warp's row tiles
  constexpr int kLanes = 32 / kMTiles;  // lanes holding one row tile's starts
  // kGroup 1: [warps][kStages][x_elems + w_elems] uint16 ring slots; else [groups][kStages]
  // [x_elems], then [warps][kStages][w_elems]. After the loop, the epilogue's float partials.
  // (The second layout for both compiled the N = 1 loop to 373 SASS instructions, not 364.)
  extern __shared__ __align__(16) unsigned char shared[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int member = warp % kGroup, group = warp / kGroup;  // group: the warps sharing x
  const int g = lane >> 2, t = lane & 3;
  const int m_tiles = (M + 15) >> 4;
  const int tile_row0 = (blockIdx.x * kGroup + member) * kMTiles;
  uint16_t* const base = reinterpret_cast<uint16_t*>(shared);
  uint16_t* const x_ring = kGroup == 1 ? base + warp * kStages * (x_elems + w_elems)
                                       : base + group * kStages * x_elems;
  uint16_t* const w_ring =
      kGroup == 1 ? x_ring + x_elems
                  : base + ((blockDim.x >> 5) / kGroup) * kStages * x_elems + warp * kStages * w_elems;
  const int x_step = kGroup == 1 ? x_elems + w_elems : x_elems;  // from one slot to the next
  const int w_step = kGroup == 1 ? x_elems + w_elems : w_elems;
  const unsigned group_threads = kGroup * 32;
  const uint32_t lane_mask = (1u << (2 * t)) - 1u;  // a word's bits below the lane's columns

  float acc[kMTiles][kNTiles][4];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.f;

  const int64_t all_tiles = static_cast<int64_t>(m_tiles) * k_tiles;
  // Block (x, y) takes K tiles [y * tiles_per_split, + tiles_per_split); its groups of kGroup
  // warps (kGroup 1: its warps) split them.
  const int split_end = min(k_tiles, (blockIdx.y + 1) * tiles_per_split);
  const int j_begin = blockIdx.y * tiles_per_split + group * tiles_per_group;
  const int j_end = min(split_end, j_begin + tiles_per_group);
  // Lane mt * kLanes + l: row tile mt's tile (j + l); a row tile past the last repeats the last
  // (its rows are not written).
  const int my_row = min(tile_row0 + lane / kLanes, m_tiles - 1);
  int x_offset[kXPieces], x_k[kXPieces], x_store[kXPieces];
#pragma unroll
  for (int i = 0; i < kXPieces; ++i) {  // pieces member, member + kGroup, .. (-1: none)
    const int piece = i * kGroup + member;
    x_offset[i] = -1, x_k[i] = 0, x_store[i] = 0;
    if (kGroup == 1 || piece < S::kPieces) {
      S::FirstPiece(piece, lane, K, N, x_offset[i], x_k[i]);
      x_store[i] = S::StoreOffset(piece, lane);
    }
  }
  int bitmap_row[kMTiles];  // row tile mt's first bitmap word, plus this lane's piece
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
    bitmap_row[mt] = min(tile_row0 + mt, m_tiles - 1) * k_tiles * 32 + (lane & 7) * 4;
  const int values_end = static_cast<int>(nse);
  for (int j0 = j_begin; j0 < j_end; j0 += kLanes - 1) {
    const int count = min(kLanes - 1, j_end - j0);
    int my_start = 0;
    {
      const int l = lane % kLanes;
      const int64_t tile = static_cast<int64_t>(my_row) * k_tiles + j0 + l;
      if (l <= count) my_start = tile < all_tiles ? __ldg(row_offsets + tile * 16)
                                                  : static_cast<int>(nse);
    }
    // Starts copies of step jj (K tile j0 + jj) into its slot; a no-op past the last. All
    // offsets are 32-bit (the handler bounds the arrays), the per-lane parts hoisted out of
    // the K loop: at one row tile, N = 1, the 64-bit version took 228 of the loop body's 530
    // SASS instructions a tile (115 of 364 now).
    auto issue = [&](int jj) {
      if (jj >= count) return;
      uint16_t* x_slot = x_ring + (jj % kStages) * x_step;
      uint16_t* w_slot = w_ring + (jj % kStages) * w_step;
      const int j = j0 + jj;
      const int k_limit = K - 64 * j, x_advance = j * S::StepElems(N);
      // Pieces of columns n >= N are not copied: their stale values reach only output
      // columns n >= N, never stored. Those past K are zero-filled (a zero of W times a stale
      // NaN would not be zero).
#pragma unroll
      for (int i = 0; i < kXPieces; ++i) {
        if (x_offset[i] < 0) continue;
        const bool inside = x_k[i] < k_limit;
        CpAsync16(x_slot + x_store[i], x + (inside ? x_offset[i] + x_advance : 0),
                  inside ? 16 : 0);
      }
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        uint16_t* tile_values = w_slot + mt * tile_slot;
        if (lane < 8) CpAsync16(tile_values + lane * 8, bitmaps + bitmap_row[mt] + j * 32, 16);
        const int start = __shfl_sync(0xffffffffu, my_start, mt * kLanes + jj);
        // A tile holds at most 16 x 64 values (the array's end may carry padding).
        const int end = min(__shfl_sync(0xffffffffu, my_start, mt * kLanes + jj + 1),
                            start + kTileCapacity);
        if (kBounded && end - start > capacity) continue;  // read from global memory
        const int aligned = start & ~7;
        const int pieces = (end - aligned + 7) >> 3;  // 16-byte pieces from ``aligned``
        uint16_t* destination = tile_values + kBitmapElems + lane * 8;
        const uint16_t* source = data + aligned + lane * 8;
        if (aligned + pieces * 8 <= values_end) {  // every tile but the array's last ones
#pragma unroll 1
          for (int q = lane; q < pieces; q += 32, destination += 256, source += 256)
            CpAsync16(destination, source);
        } else {
#pragma unroll 1
          for (int q = lane; q < pieces; q += 32, destination += 256, source += 256) {
            const int left = values_end - (aligned + q * 8);  // > 0: aligned + 8 q < end
            CpAsync16(destination, source, left >= 8 ? 16 : left * 2);
          }
        }
      }
    };
    // Shared x: the group's last round read its slots before this one's first copies.
    if constexpr (kGroup > 1) GroupBarrier(1 + group, group_threads);
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      issue(s);
      CpAsyncCommit();
    }
    for (int jj = 0; jj < count; ++jj) {
      if constexpr (kGroup == 1) {
        issue(jj + kStages - 1);  // into the slot that step jj - 1 read
        CpAsyncCommit();
        CpAsyncWait<kStages - 1>();  // step jj's group has landed
        __syncwarp();
      } else {
        CpAsyncWait<kStages - 2>();  // this thread's copies of step jj have landed
        // ... and every group member's; and all have read step jj - 1's slot, refilled now.
        GroupBarrier(1 + group, group_threads);
        issue(jj + kStages - 1);
        CpAsyncCommit();
      }
      const uint16_t* x_slot = x_ring + (jj % kStages) * x_step;
      const uint16_t* w_slot = w_ring + (jj % kStages) * w_step;
      uint32_t low[kMTiles][2], high[kMTiles][2];
      int base_low[kMTiles], base_high[kMTiles], start[kMTiles];
      bool in_slot[kMTiles];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        const uint16_t* tile_values = w_slot + mt * tile_slot;
        const uint32_t* bits = reinterpret_cast<const uint32_t*>(tile_values);
        // Row r = lane % 16's first value: an exclusive scan of the rows' bit counts (both
        // half-warps compute it), from the tile's start within the 8-aligned copy.
        const int r = lane & 15;
        const int mine = __popc(bits[2 * r]) + __popc(bits[2 * r + 1]);
        int inclusive = mine;
#pragma unroll
        for (int d = 1; d < 16; d <<= 1) {
          const int below = __shfl_up_sync(0xffffffffu, inclusive, d);
          if (r >= d) inclusive += below;
        }
        start[mt] = __shfl_sync(0xffffffffu, my_start, mt * kLanes + jj);
        const int end = min(__shfl_sync(0xffffffffu, my_start, mt * kLanes + jj + 1),
                            start[mt] + kTileCapacity);
        in_slot[mt] = !kBounded || end - start[mt] <= capacity;  // as issue() decided
        base_low[mt] = __shfl_sync(0xffffffffu, inclusive - mine, g);
        base_high[mt] = __shfl_sync(0xffffffffu, inclusive - mine, g + 8);
        low[mt][0] = bits[2 * g];
        low[mt][1] = bits[2 * g + 1];
        high[mt][0] = bits[2 * (g + 8)];
        high[mt][1] = bits[2 * (g + 8) + 1];
      }
#pragma unroll
      for (int half = 0; half < 2; ++half) {  // columns 32 half .. 32 half + 31: word ``half``
        uint32_t b[kNTiles][4];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt)
          LdMatrix(b[nt], x_slot + S::FragmentOffset(half, nt, lane, S::TiledColumns(N)),
                   !kTokensMajor);
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) {
          // The lane's columns of the word are 2t + {0, 1, 8, 9, 16, 17, 24, 25}: shifted by
          // 2t, its rows' bits and first places serve the four pairs with constant masks.
          const uint32_t bits_low = low[mt][half] >> (2 * t);
          const uint32_t bits_high = high[mt][half] >> (2 * t);
          const int row_low = base_low[mt] + (half ? __popc(low[mt][0]) : 0) +
                              __popc(low[mt][half] & lane_mask);
          const int row_high = base_high[mt] + (half ? __popc(high[mt][0]) : 0) +
                               __popc(high[mt][half] & lane_mask);
          uint32_t a0[4], a1[4];
          const uint16_t* slot_values = w_slot + mt * tile_slot + kBitmapElems + (start[mt] & 7);
          // At 25-32 columns the PTX loads cut the loop body 12-22% (the default launch's, two
          // row tiles: 822 -> 725 SASS instructions a trip); in launches of two or more slots
          // at 1-16 columns they changed it -2% to +2% (N = 1: 364 -> 370), so those keep the
          // C++ loads.
          if (kNTiles == 4 && (!kBounded || in_slot[mt]))
            ExpandWordShared(static_cast<uint32_t>(__cvta_generic_to_shared(slot_values)),
                             bits_low, bits_high, row_low, row_high, a0, a1);
          else if (!kBounded || in_slot[mt])  // the warp's branch: each keeps its address space
            ExpandWord(slot_values, bits_low, bits_high, row_low, row_high, a0, a1);
          else
            ExpandWord(data + start[mt], bits_low, bits_high, row_low, row_high, a0, a1);
#pragma unroll
          for (int nt = 0; nt < kNTiles; ++nt) {  // the word's two k16 steps
            Mma16816<kBf16>(acc[mt][nt], a0, b[nt][0], b[nt][1]);
            Mma16816<kBf16>(acc[mt][nt], a1, b[nt][2], b[nt][3]);
          }
        }
      }
      if constexpr (kGroup == 1) __syncwarp();  // reads done before step jj + 1 refills the slot
    }
  }
  __syncthreads();  // every warp's ring is done: the epilogue reuses the memory
  const int block_row0 = blockIdx.x * kGroup * kMTiles * 16;
  if (gridDim.y == 1)
    ReduceAndStore<kBf16, kMTiles, kNTiles, kTokensMajor, uint16_t, kGroup>(
        acc, reinterpret_cast<float*>(shared), static_cast<uint16_t*>(out), block_row0, M, N);
  else  // this split's float32 partial sums: out [splits][M, N] (or [splits][N, M])
    ReduceAndStore<kBf16, kMTiles, kNTiles, kTokensMajor, float, kGroup>(
        acc, reinterpret_cast<float*>(shared),
        static_cast<float*>(out) + static_cast<size_t>(blockIdx.y) * M * N, block_row0, M, N);
}

struct TiledLaunch {
  const void* data;
  const void* bitmaps;
  const void* row_offsets;
  const void* x;
  void* out;
  int m, k, n, k_tiles, warps;
  int64_t nse;
  int capacity, k_splits;
};

template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor, int kStages, int kGroup = 1>
cudaError_t RunTiled(cudaStream_t stream, const TiledLaunch& l) {
  using S = Stage<kNTiles, kTokensMajor>;
  auto kernel = TiledMmaKernel<kBf16, kNTiles, kMTiles, kTokensMajor, kStages, kGroup>;
  const int blocks = ((l.m + 15) / 16 + kMTiles * kGroup - 1) / (kMTiles * kGroup);
  const int groups = l.warps / kGroup;  // the handler checks that kGroup divides warps
  const int tiles_per_split = (l.k_tiles + l.k_splits - 1) / l.k_splits;
  const int tiles_per_group = (tiles_per_split + groups - 1) / groups;
  // The ring (as the kernel lays it out) and the epilogue's partials share the memory.
  const size_t x_elems = S::TiledElems(l.n), w_elems = kMTiles * (kBitmapElems + l.capacity + 8);
  const size_t ring = kStages * (groups * x_elems + l.warps * w_elems) * 2;
  const size_t partials =
      static_cast<size_t>(l.warps) * kMTiles * 16 * kNTiles * 8 * sizeof(float);
  const size_t shared = ring > partials ? ring : partials;
  if (shared > 48 * 1024) {
    const cudaError_t error = cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    if (error != cudaSuccess) return error;
  }
  kernel<<<dim3(blocks, l.k_splits), l.warps * 32, shared, stream>>>(
      static_cast<const uint16_t*>(l.data), static_cast<const uint32_t*>(l.bitmaps),
      static_cast<const int32_t*>(l.row_offsets), static_cast<const uint16_t*>(l.x), l.out, l.m,
      l.k, l.n, l.k_tiles, tiles_per_group, l.nse, l.capacity, tiles_per_split);
  return cudaGetLastError();
}

template <bool kBf16, int kNTiles, int kMTiles, bool kTokensMajor>
cudaError_t TiledByStages(cudaStream_t stream, const TiledLaunch& l, int stages) {
  switch (stages) {
    case 1: return RunTiled<kBf16, kNTiles, kMTiles, kTokensMajor, 1>(stream, l);
    case 2: return RunTiled<kBf16, kNTiles, kMTiles, kTokensMajor, 2>(stream, l);
    case 3: return RunTiled<kBf16, kNTiles, kMTiles, kTokensMajor, 3>(stream, l);
    default: return RunTiled<kBf16, kNTiles, kMTiles, kTokensMajor, 4>(stream, l);
  }
}

template <bool kBf16, int kNTiles, int kMTiles>
cudaError_t TiledByLayout(cudaStream_t stream, const TiledLaunch& l, bool tokens_major,
                          int stages) {
  return tokens_major ? TiledByStages<kBf16, kNTiles, kMTiles, true>(stream, l, stages)
                      : TiledByStages<kBf16, kNTiles, kMTiles, false>(stream, l, stages);
}

// Launches whose groups of ``x_sharing`` (2 or 4) warps share x: [K, N] x, m_tiles 1 or 2,
// stages 2 or 3 (the handler checks).
template <bool kBf16, int kNTiles, int kMTiles>
cudaError_t TiledShared(cudaStream_t stream, const TiledLaunch& l, int x_sharing, int stages) {
  if (x_sharing == 2)
    return stages == 2 ? RunTiled<kBf16, kNTiles, kMTiles, false, 2, 2>(stream, l)
                       : RunTiled<kBf16, kNTiles, kMTiles, false, 3, 2>(stream, l);
  return stages == 2 ? RunTiled<kBf16, kNTiles, kMTiles, false, 2, 4>(stream, l)
                     : RunTiled<kBf16, kNTiles, kMTiles, false, 3, 4>(stream, l);
}

template <bool kBf16, int kNTiles>
cudaError_t TiledByMTiles(cudaStream_t stream, const TiledLaunch& l, bool tokens_major,
                          int m_tiles, int stages, int x_sharing) {
  if (x_sharing > 1)
    return m_tiles == 1 ? TiledShared<kBf16, kNTiles, 1>(stream, l, x_sharing, stages)
                        : TiledShared<kBf16, kNTiles, 2>(stream, l, x_sharing, stages);
  switch (m_tiles) {
    case 1: return TiledByLayout<kBf16, kNTiles, 1>(stream, l, tokens_major, stages);
    case 2: return TiledByLayout<kBf16, kNTiles, 2>(stream, l, tokens_major, stages);
    default: return TiledByLayout<kBf16, kNTiles, 4>(stream, l, tokens_major, stages);
  }
}

template <bool kBf16>
cudaError_t TiledByNTiles(cudaStream_t stream, const TiledLaunch& l, bool tokens_major,
                          int m_tiles, int stages, int x_sharing) {
  if (l.n <= 8)
    return TiledByMTiles<kBf16, 1>(stream, l, tokens_major, m_tiles, stages, x_sharing);
  if (l.n <= 16)
    return TiledByMTiles<kBf16, 2>(stream, l, tokens_major, m_tiles, stages, x_sharing);
  return TiledByMTiles<kBf16, 4>(stream, l, tokens_major, m_tiles, stages, x_sharing);
}

ffi::Error Invalid(const std::string& message) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "jsparse sparse_mma: " + message);
}

// x's checks both handlers make: bfloat16/float16, 2-D, contraction size k, 1..32 columns
// (stored in ``n``), and out of x's dtype with m x n elements, or with ``splits`` > 1 (K split
// over blocks) float32 with splits x m x n.
ffi::Error CheckX(const ffi::AnyBuffer& x, const ffi::Result<ffi::AnyBuffer>& out, int64_t m,
                  int64_t k, int64_t tokens_major, int64_t& n, int64_t splits = 1) {
  const ffi::DataType dtype = x.element_type();
  if (dtype != ffi::DataType::BF16 && dtype != ffi::DataType::F16)
    return Invalid("x must be bfloat16 or float16");
  if (splits == 1 && out->element_type() != dtype) return Invalid("out must have x's dtype");
  if (splits > 1 && out->element_type() != ffi::DataType::F32)
    return Invalid("out must be float32 when K is split");
  const auto dims = x.dimensions();
  if (dims.size() != 2) return Invalid("x must be 2-D");
  n = tokens_major ? dims[0] : dims[1];
  const int64_t x_k = tokens_major ? dims[1] : dims[0];
  if (x_k != k)
    return Invalid("x's contraction size " + std::to_string(x_k) + " != K " + std::to_string(k));
  if (n < 1 || n > 32) return Invalid("N must be 1..32, got " + std::to_string(n));
  if (out->element_count() != static_cast<size_t>(splits * m * n))
    return Invalid("out has the wrong size");
  return ffi::Error::Success();
}

ffi::Error MatmulImpl(cudaStream_t stream, ffi::AnyBuffer values, ffi::AnyBuffer meta,
                      ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> out, int64_t m, int64_t k,
                      int64_t tokens_major, int64_t m_tiles, int64_t warps, int64_t staged) {
  if (m < 1 || k < 4 || k % 4) return Invalid("bad shape");
  int64_t n = 0;
  if (ffi::Error error = CheckX(x, out, m, k, tokens_major, n); error.failure()) return error;
  const ffi::DataType dtype = x.element_type();
  if (m_tiles != 1 && m_tiles != 2) return Invalid("m_tiles must be 1 or 2");
  // Staging copies 16-byte pieces: rows of x must start 16-byte aligned.
  const bool stageable = tokens_major ? k % 8 == 0 : n % 8 == 0;
  if (staged == 1 && !stageable)
    return Invalid(tokens_major ? "staged launches need K % 8 == 0"
                                : "staged launches need N % 8 == 0");
  const bool stage = staged == 1 || (staged < 0 && stageable);
  if (warps < 1 || warps > 8) return Invalid("warps must be 1..8");
  const int64_t tiles = (m + 15) / 16, pairs = (k + 63) / 64;
  if (values.size_bytes() != static_cast<size_t>(tiles * pairs * 2 * 32 * 16))
    return Invalid("values hold " + std::to_string(values.size_bytes()) + " bytes, expected " +
                   std::to_string(tiles * pairs * 2 * 32 * 16));
  if (meta.size_bytes() != static_cast<size_t>(tiles * pairs * 32 * 4))
    return Invalid("meta has the wrong size");
  const Launch launch{values.untyped_data(), meta.untyped_data(), x.untyped_data(),
                      out->untyped_data(), static_cast<int>(m), static_cast<int>(k),
                      static_cast<int>(n), static_cast<int>(pairs), static_cast<int>(warps)};
  const cudaError_t error =
      dtype == ffi::DataType::BF16
          ? ByNTiles<true>(stream, launch, tokens_major != 0, stage, m_tiles)
          : ByNTiles<false>(stream, launch, tokens_major != 0, stage, m_tiles);
  if (error != cudaSuccess)
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("sparse_mma launch failed: ") + cudaGetErrorString(error));
  return ffi::Error::Success();
}


ffi::Error TiledMatmulImpl(cudaStream_t stream, ffi::AnyBuffer data, ffi::AnyBuffer bitmaps,
                           ffi::AnyBuffer row_offsets, ffi::AnyBuffer x,
                           ffi::Result<ffi::AnyBuffer> out, int64_t m, int64_t k,
                           int64_t tokens_major, int64_t m_tiles, int64_t warps,
                           int64_t stages, int64_t capacity, int64_t k_splits,
                           int64_t x_sharing) {
  if (m < 1 || k < 1) return Invalid("bad shape");
  if (k_splits < 1 || k_splits > 16) return Invalid("k_splits must be 1..16");
  int64_t n = 0;
  if (ffi::Error error = CheckX(x, out, m, k, tokens_major, n, k_splits); error.failure())
    return error;
  const ffi::DataType dtype = x.element_type();
  if (const std::string problem =
          jsparse_tiled::WeightProblem(data, bitmaps, row_offsets, dtype, m, k);
      !problem.empty())
    return Invalid(problem);
  if (tokens_major ? k % 8 : n % 8)
    return Invalid(tokens_major ? "tokens-major x needs K % 8 == 0" : "x [K, N] needs N % 8 == 0");
  if (warps < 1 || warps > 16) return Invalid("warps must be 1..16");
  if (m_tiles != 1 && m_tiles != 2 && m_tiles != 4) return Invalid("m_tiles must be 1, 2 or 4");
  if (stages < 1 || stages > 4) return Invalid("stages must be 1..4");
  if (capacity < 8 || capacity > kTileCapacity || capacity % 8)
    return Invalid("capacity must be a multiple of 8 in 8..1024, got " + std::to_string(capacity));
  if (capacity != kTileCapacity && m_tiles != 4)
    return Invalid("a capacity below 1024 needs m_tiles = 4");
  if (x_sharing != 1 && x_sharing != 2 && x_sharing != 4)
    return Invalid("x_sharing must be 1, 2 or 4, got " + std::to_string(x_sharing));
  if (x_sharing > 1 && (tokens_major || m_tiles == 4 || stages < 2 || stages > 3 ||
                        warps % x_sharing))
    return Invalid("x_sharing > 1 needs x [K, N], m_tiles 1 or 2, stages 2 or 3 and warps a "
                   "multiple of it");
  // The kernel's offsets are 32-bit (a value's place may run 256 past the last).
  if (static_cast<int64_t>(x.element_count()) > jsparse_tiled::kMaxElements)
    return Invalid("x must hold fewer than 2^31 - 1024 elements");
  const int64_t k_tiles = (k + 63) / 64;
  const TiledLaunch launch{data.untyped_data(), bitmaps.untyped_data(), row_offsets.untyped_data(),
                           x.untyped_data(), out->untyped_data(), static_cast<int>(m),
                           static_cast<int>(k), static_cast<int>(n), static_cast<int>(k_tiles),
                           static_cast<int>(warps), static_cast<int64_t>(data.element_count()),
                           static_cast<int>(capacity), static_cast<int>(k_splits)};
  const cudaError_t error = dtype == ffi::DataType::BF16
          ? TiledByNTiles<true>(stream, launch, tokens_major != 0, m_tiles, stages, x_sharing)
          : TiledByNTiles<false>(stream, launch, tokens_major != 0, m_tiles, stages, x_sharing);
  if (error != cudaSuccess)
    return ffi::Error(ffi::ErrorCode::kInternal,
                      std::string("tiled mma launch failed: ") + cudaGetErrorString(error));
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseSparseMmaMatmul, MatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("tokens_major")
                                  .Attr<int64_t>("m_tiles")
                                  .Attr<int64_t>("warps")
                                  .Attr<int64_t>("staged"),
                              {ffi::Traits::kCmdBufferCompatible});

XLA_FFI_DEFINE_HANDLER_SYMBOL(JsparseTiledMmaMatmul, TiledMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::PlatformStream<cudaStream_t>>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("m")
                                  .Attr<int64_t>("k")
                                  .Attr<int64_t>("tokens_major")
                                  .Attr<int64_t>("m_tiles")
                                  .Attr<int64_t>("warps")
                                  .Attr<int64_t>("stages")
                                  .Attr<int64_t>("capacity")
                                  .Attr<int64_t>("k_splits")
                                  .Attr<int64_t>("x_sharing"),
                              {ffi::Traits::kCmdBufferCompatible});
