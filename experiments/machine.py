"""What the benchmark runs on: platform, device and CPU names, cache size, library versions."""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import os
import pathlib
import platform as host_platform
import re

import jax

# The last-level cache assumed when a GPU's cannot be read (H100: 50 MB of L2).
DEFAULT_GPU_L2_BYTES = 50 * 2**20
DEFAULT_CPU_LLC_BYTES = 32 * 2**20
VERSIONED = ("jax", "jaxlib", "numpy", "scipy", "torch", "cupy", "jsparse")


@dataclasses.dataclass(frozen=True)
class Machine:
  """The run's environment, recorded with every result.

  Attributes:
    platform: the jsparse registry's platform name: "cpu", "cuda", "rocm" or "tpu".
    device: the JAX device kind, e.g. "NVIDIA H100 80GB HBM3" or "cpu".
    cpu_model: the host CPU's model name.
    cpu_cores: logical CPUs available to this process.
    cache_bytes: the last-level cache of the device (CPU L3, GPU L2).
    versions: library name -> version ("-" when not importable).
    date: ISO date of the run.
  """

  platform: str
  device: str
  cpu_model: str
  cpu_cores: int
  cache_bytes: int
  versions: dict
  date: str

  @property
  def on_gpu(self) -> bool:
    return self.platform in ("cuda", "rocm")

  def slug(self) -> str:
    """A folder-name label, e.g. "nvidia-h100-80gb-hbm3" or "cpu-amd-epyc-2c"."""
    label = self.device if self.on_gpu else f"cpu {self.cpu_model} {self.cpu_cores}c"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")

  def asdict(self) -> dict:
    return dataclasses.asdict(self)


def detect() -> Machine:
  device = jax.devices()[0]
  platform = device.platform
  if platform == "gpu":
    version = device.client.platform_version.lower()
    platform = "rocm" if "rocm" in version else "cuda"
  on_gpu = platform in ("cuda", "rocm")
  return Machine(
      platform=platform,
      device=str(device.device_kind),
      cpu_model=_cpu_model(),
      cpu_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else
      (os.cpu_count() or 1),
      cache_bytes=_gpu_l2_bytes() if on_gpu else _cpu_llc_bytes(),
      versions={name: _version(name) for name in VERSIONED},
      date=datetime.date.today().isoformat(),
  )


def _version(module: str) -> str:
  try:
    return str(importlib.import_module(module).__version__)
  except Exception:  # not installed, or broken: either way not usable here
    return "-"


def _cpu_model() -> str:
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return host_platform.processor() or host_platform.machine()


def _cpu_llc_bytes() -> int:
  """The largest cache of cpu0 from sysfs (Linux), else ``DEFAULT_CPU_LLC_BYTES``."""
  sizes = []
  for size_file in pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
    match = re.fullmatch(r"(\d+)([KMG]?)", size_file.read_text().strip())
    if match:
      sizes.append(int(match[1]) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[match[2]])
  return max(sizes, default=DEFAULT_CPU_LLC_BYTES)


def _gpu_l2_bytes() -> int:
  """The GPU's L2 through torch or cupy when importable, else ``DEFAULT_GPU_L2_BYTES``."""
  try:
    import torch
    if torch.cuda.is_available():
      return int(torch.cuda.get_device_properties(0).L2_cache_size)
  except Exception:
    pass
  try:
    import cupy
    return int(cupy.cuda.runtime.getDeviceProperties(0)["l2CacheSize"])
  except Exception:
    return DEFAULT_GPU_L2_BYTES
