"""The scaling study on paper: expected time of sharded SpMM and of a sparse Llama-3-8B MLP on
1-8 GPUs of one host and on several hosts, from a per-device kernel model and the interconnect.

    python experiments/scaling/model.py > experiments/scaling/model_table.md

Nothing here is measured: every figure follows from ``Machine`` (datasheet bandwidths, assumed
achieved fractions, stated below) and the op's bytes and flops. The per-device kernel model is
``t = max(bytes / hbm_achieved, flops / sparse_flops)``: memory-bound for SpMV-like calls (decode),
throughput-bound otherwise, with ``sparse_flops`` the achieved rate of unstructured SpMM (the
survey's "under 3% of peak"; replace it with the measured per-device figure of the GPU benchmark).
Collectives are NCCL ring/tree costs: all-reduce ``2 (P-1)/P * bytes / busbw + latency``,
all-gather ``(P-1)/P * bytes / busbw + latency``, with a faster bus inside a host (NVLink/NVSwitch)
than between hosts (one 400 Gb/s NIC per GPU).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Machine:
  """H100 SXM (80 GB) in an 8-GPU NVSwitch host; hosts joined by one 400 Gb/s NIC per GPU."""

  hbm_achieved: float = 0.6 * 3.35e12      # B/s: 60% of 3.35 TB/s HBM3 for gather-heavy reads
  sparse_flops: float = 0.03 * 67e12       # flop/s: 3% of FP32 peak (unstructured SpMM)
  gpus_per_host: int = 8
  intra_busbw: float = 350e9               # B/s: NCCL bus bandwidth over NVLink 4 (900 GB/s raw)
  intra_latency: float = 10e-6             # s per collective inside a host
  inter_busbw: float = 40e9                # B/s: per GPU over 400 Gb/s (50 GB/s raw) InfiniBand
  inter_latency: float = 30e-6             # s per collective across hosts


def collective(kind: str, nbytes: float, devices: int, machine: Machine) -> float:
  """Seconds for an all-reduce or all-gather of ``nbytes`` (the full result) over ``devices``."""
  if devices == 1:
    return 0.0
  across_hosts = devices > machine.gpus_per_host
  busbw = machine.inter_busbw if across_hosts else machine.intra_busbw
  latency = machine.inter_latency if across_hosts else machine.intra_latency
  factor = 2.0 if kind == "all_reduce" else 1.0
  return factor * (devices - 1) / devices * nbytes / busbw + latency


def kernel(flops: float, nbytes: float, machine: Machine) -> float:
  return max(nbytes / machine.hbm_achieved, flops / machine.sparse_flops)


def spmm(rows: int, cols: int, density: float, n: int, devices: int, split: str,
         machine: Machine, value_bytes: int = 4) -> tuple[float, float]:
  """(compute s, communication s) of CSR SpMM [rows, cols] @ [cols, n] on ``devices``.

  rows: row split, B replicated, the result all-gathered; cols: K split, partial results
  all-reduced. Nonzeros are balanced (jsparse.shard), so compute divides by ``devices``.
  """
  nnz = rows * cols * density
  flops = 2.0 * nnz * n
  nbytes = nnz * (value_bytes + 4) + cols * n * value_bytes + rows * n * value_bytes
  compute = kernel(flops / devices, nbytes / devices, machine)
  out_bytes = rows * n * value_bytes
  comm = collective("all_gather" if split == "rows" else "all_reduce", out_bytes, devices, machine)
  return compute, comm


def llama_mlp(tokens: int, density: float, devices: int, machine: Machine,
              d_model: int = 4096, d_ff: int = 14336, value_bytes: int = 2) -> tuple[float, float]:
  """(compute s, communication s) of the Megatron sparse MLP: gate/up/down (3 x 14336 x 4096),
  bfloat16 values and activations, one all-reduce of [tokens, d_model]."""
  nnz = 3 * d_ff * d_model * density
  flops = 2.0 * nnz * tokens
  nbytes = nnz * (value_bytes + 4) + (2 * d_model + 3 * d_ff) * tokens * value_bytes
  compute = kernel(flops / devices, nbytes / devices, machine)
  return compute, collective("all_reduce", tokens * d_model * value_bytes, devices, machine)


def table(machine: Machine = Machine()) -> str:
  devices = (1, 2, 4, 8, 16, 32)
  lines = ["| workload | split | " + " | ".join(f"{p} GPU{'s' if p > 1 else ''}" for p in devices)
           + " | communication > compute from |",
           "|---|---|" + "---|" * len(devices) + "---|"]

  def row(name, split, fn):
    cells, crossover = [], "-"
    base = sum(fn(1))
    for p in devices:
      compute, comm = fn(p)
      total = compute + comm
      cells.append(f"{total * 1e6:.0f} us ({base / total:.1f}x, {comm / total:.0%} comm)")
      if comm > compute and crossover == "-":
        crossover = f"{p} GPUs"
    lines.append(f"| {name} | {split} | " + " | ".join(cells) + f" | {crossover} |")

  for rows, cols in ((4096, 4096), (14336, 4096)):
    for n in (128, 1024):
      for split in ("rows", "cols"):
        row(f"SpMM {rows}x{cols} 90% N={n}", split,
            lambda p, rows=rows, cols=cols, n=n, split=split: spmm(rows, cols, 0.1, n, p, split,
                                                                   machine))
  for tokens in (1, 128, 2048):
    row(f"Llama-3-8B MLP 90% T={tokens}", "megatron",
        lambda p, tokens=tokens: llama_mlp(tokens, 0.1, p, machine))
  return "\n".join(lines)


if __name__ == "__main__":
  import argparse
  parser = argparse.ArgumentParser(description="The scaling study on paper.")
  parser.add_argument("--sparse-tflops", type=float, default=None,
                      help="the achieved SpMM rate in TFLOP/s (default: 3%% of 67, the survey's)")
  parser.add_argument("--intra-busbw-gbs", type=float, default=None,
                      help="NCCL bus bandwidth inside a host in GB/s (default 350)")
  args = parser.parse_args()
  for name in ("sparse_tflops", "intra_busbw_gbs"):
    if getattr(args, name) is not None and not getattr(args, name) > 0:
      parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
  machine = Machine()
  if args.sparse_tflops is not None:
    machine = dataclasses.replace(machine, sparse_flops=args.sparse_tflops * 1e12)
  if args.intra_busbw_gbs is not None:
    machine = dataclasses.replace(machine, intra_busbw=args.intra_busbw_gbs * 1e9)
  print(f"Machine: {machine}\n")
  print("Each cell: expected time, speedup over 1 GPU, share of communication. 16 and 32 GPUs "
        "are 2 and 4 hosts of 8.\n")
  print(table(machine))
