"""Runs one Pallas CSR SpMM or SDDMM launch a few times on 4096x4096 uniform random (float32),
for a profiler to attach to (``csr_profile.sh`` runs it under Nsight Compute).

    python3 experiments/gpu_checks/csr_profile.py spmm 0.9 128 [prefetch [num_warps block_nnz]]
    python3 experiments/gpu_checks/csr_profile.py sputnik-spmm 0.9 128   # Sputnik's kernel

    python3 experiments/gpu_checks/csr_profile.py nm-decode 4096 14336 [num_warps block_m]

    python3 experiments/gpu_checks/csr_profile.py tiled-gather 4096 14336 [num_warps tile_rows]

    python3 experiments/gpu_checks/csr_profile.py nm-launch 4096 14336 16 paired-k128

    python3 experiments/gpu_checks/csr_profile.py tiled 14336 4096 16 pipelined

    python3 experiments/gpu_checks/csr_profile.py spmv 16384 0.7 w1

``spmv``: the CSR SpMV on a uniform random [size, size] float32 matrix, one of
``spmv_probe.launches(..., "one-warp")``.
``tiled``: the expanding tiled-bitmap kernel (16 x 64 tiles, 70% sparsity, bfloat16) on a [M, K]
weight times N columns, the decoding launch ``jsparse._gpu.structured.tiled_config`` picks
changed by one of ``tiled_probe.CHANGES``.
``nm-launch``: a 2:4 bfloat16 [M, K] weight times N columns with one of ``nm_probe.CHANGES``'
launches.

``tiled-gather``: the tiled-bitmap gather kernel (N = 1, 16 x 64 tiles, 70% sparsity, bfloat16),
the launch ``jsparse._gpu.structured.tiled_gather_config`` picks, warps and tile rows changed
if given.
``nm-decode``: the 2:4 bfloat16 gathered decoding (N = 1) of a [M, K] weight, the launch
``jsparse._gpu.structured.nm_config`` picks, with warps and block_m changed if given.
``sputnik-spmm`` needs the Sputnik build (``experiments/sputnik/build.sh``) and torch.
"""

from __future__ import annotations

import pathlib
import sys

sys.path.append(str(pathlib.Path(__file__).resolve().parents[2]))

import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from experiments.gpu_checks import csr_bench  # noqa: E402
from pallas_kernels import csr_sddmm, csr_spmm  # noqa: E402


def _run_nm(rows: int, cols: int, num_n: int, config_of, label: str) -> None:
  """Three calls of the N:M kernel on a 2:4 bfloat16 [rows, cols] weight (packed positions)
  times ``num_n`` columns, with the launch ``config_of(matrix)`` gives."""
  from jsparse.formats import NM
  from pallas_kernels import nm_matmul
  key = jax.random.key(0)
  weights = jax.random.normal(key, (rows, cols), jnp.float32).astype(jnp.bfloat16)
  matrix = NM.fromdense(weights, n=2, m=4)
  x = jax.random.normal(jax.random.fold_in(key, 1), (cols, num_n)).astype(jnp.bfloat16)
  config = config_of(matrix)
  print(label, rows, cols, num_n, config, flush=True)
  for _ in range(3):
    jax.block_until_ready(nm_matmul.kernel_fn(
        matrix.data, matrix.packed_indices, x, shape=matrix.shape, nm=(2, 4), config=config,
        indices_packed=True))


def nm_decode(rows: int, cols: int, changes: dict) -> None:
  from jsparse._gpu import structured

  def config_of(matrix):
    config = structured.nm_config(matrix.layout, 1)
    if not changes:
      return config
    config = dataclasses.replace(config, **changes)
    return dataclasses.replace(config, num_splits=structured.decode_splits(
        -(-rows // config.block_m), -(-cols // config.block_k)))
  _run_nm(rows, cols, 1, config_of, "nm-decode")


def tiled_gather_decode(rows: int, cols: int, changes: dict) -> None:
  from jsparse._gpu import structured
  from jsparse.formats import Tiled
  from pallas_kernels import tiled_gather
  key = jax.random.key(0)
  values = jax.random.normal(key, (rows, cols), jnp.float32)
  keep = jax.random.uniform(jax.random.fold_in(key, 2), (rows, cols)) >= 0.7
  matrix = Tiled.fromdense(jnp.where(keep, values, 0).astype(jnp.bfloat16), tile_shape=(16, 64))
  x = jax.random.normal(jax.random.fold_in(key, 1), (cols, 1)).astype(jnp.bfloat16)
  config = structured.tiled_gather_config(matrix.layout, 1)
  if changes:
    config = dataclasses.replace(config, **changes)
    config = dataclasses.replace(config, num_splits=structured.decode_splits(
        -(-rows // (16 * config.tile_rows)), -(-cols // 64)))
  print("tiled-gather", rows, cols, config, flush=True)
  for _ in range(3):
    jax.block_until_ready(tiled_gather.kernel_fn(
        matrix.data, matrix.value_columns, matrix.bitmaps, matrix.row_offsets, x,
        shape=matrix.shape, config=config))


def tiled_decode(rows: int, cols: int, n: int, name: str) -> None:
  from experiments.gpu_checks import tiled_probe
  from jsparse._gpu import structured
  from pallas_kernels import tiled_spmm
  key = jax.random.key(0)
  matrix, _ = tiled_probe.weights(key, (rows, cols), 0.7, (16, 64))
  x = jax.random.normal(jax.random.fold_in(key, 1), (cols, n)).astype(jnp.bfloat16)
  config = tiled_probe.CHANGES[name](structured.tiled_config(matrix.layout, n))
  print("tiled", rows, cols, n, config, flush=True)
  for _ in range(3):
    jax.block_until_ready(tiled_spmm.kernel_fn(
        matrix.data, matrix.bitmaps, matrix.row_offsets, x, shape=matrix.shape, config=config))


def spmv(size: int, sparsity: float, name: str) -> None:
  from experiments.gpu_checks import spmv_probe
  from pallas_kernels import csr_spmv
  rng = np.random.default_rng(0)
  data, cols, offsets = spmv_probe.uniform_csr(rng, size, sparsity)
  x = jnp.asarray(rng.standard_normal(size, dtype=np.float32))
  config = spmv_probe.launches(size, data.size, "one-warp")[name]
  print("spmv", size, sparsity, config, flush=True)
  operands = (jnp.asarray(data), jnp.asarray(cols), jnp.asarray(offsets))
  for _ in range(3):
    jax.block_until_ready(csr_spmv.kernel_fn(*operands, x, num_rows=size, config=config,
                                             natural_order=True))


def nm_launch(rows: int, cols: int, n: int, name: str) -> None:
  from experiments.gpu_checks import nm_probe
  _run_nm(rows, cols, n, lambda matrix: nm_probe.launch((rows, cols), n, name),
          f"nm-launch {name}")


def main() -> None:
  if sys.argv[1] == "nm-launch":
    nm_launch(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    return
  if sys.argv[1] == "spmv":
    spmv(int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
    return
  if sys.argv[1] == "tiled":
    tiled_decode(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    return
  if sys.argv[1] == "tiled-gather":
    changes = ({"num_warps": int(sys.argv[4]), "tile_rows": int(sys.argv[5])}
               if len(sys.argv) > 5 else {})
    tiled_gather_decode(int(sys.argv[2]), int(sys.argv[3]), changes)
    return
  if sys.argv[1] == "nm-decode":
    changes = ({"num_warps": int(sys.argv[4]), "block_m": int(sys.argv[5])}
               if len(sys.argv) > 5 else {})
    nm_decode(int(sys.argv[2]), int(sys.argv[3]), changes)
    return
  op, sparsity, width = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
  prefetch = sys.argv[4] if len(sys.argv) > 4 else "none"
  changes = {"prefetch": prefetch}
  if len(sys.argv) > 6:
    changes.update(num_warps=int(sys.argv[5]), block_nnz=int(sys.argv[6]))
  rng = np.random.default_rng(0)
  _, data, cols, offsets = csr_bench.uniform_csr(rng, 4096, sparsity)
  data, cols, offsets = jnp.asarray(data), jnp.asarray(cols), jnp.asarray(offsets)
  if op == "sputnik-spmm":
    import scipy.sparse
    import torch
    from experiments.sputnik import smoke
    from experiments.sputnik import binding
    matrix = scipy.sparse.csr_matrix((np.asarray(data), np.asarray(cols), np.asarray(offsets)),
                                     shape=(4096, 4096))
    _, csr = smoke.device_csr(matrix)
    b = torch.from_numpy(rng.standard_normal((4096, width), dtype=np.float32)).cuda()
    out = torch.empty((4096, width), device="cuda")
    launch = binding.Spmm(csr, b, out, torch.cuda.current_stream().cuda_stream)
    print(op, sparsity, width, flush=True)
    for _ in range(3):
      launch()
    torch.cuda.synchronize()
    return
  if op == "spmm":
    config = dataclasses.replace(csr_spmm.choose_config(4096, 4096, width, data.size),
                                 **changes)
    b = jnp.asarray(rng.standard_normal((4096, width), dtype=np.float32))
    run = lambda: csr_spmm.kernel_fn(data, cols, offsets, b, num_rows=4096, config=config,
                                     natural_order=True)
  else:
    config = dataclasses.replace(csr_sddmm.choose_config(4096, data.size, width), **changes)
    x = jnp.asarray(rng.standard_normal((4096, width), dtype=np.float32))
    y = jnp.asarray(rng.standard_normal((4096, width), dtype=np.float32))
    run = lambda: csr_sddmm.kernel_fn(cols, offsets, x, y, num_rows=4096, config=config,
                                      natural_order=True)
  print(op, sparsity, width, config, flush=True)
  for _ in range(3):
    jax.block_until_ready(run())


if __name__ == "__main__":
  main()
