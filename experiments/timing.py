"""How each framework is timed: one timer class per method, all reporting the same ``Measurement``.

What every method shares:
- Warm-up first: compilation, autotuning, lazy allocation and first-touch page faults are excluded.
- A *sample* runs the op ``inner`` times back to back and is divided by ``inner``; ``inner`` is
  calibrated (doubled from 1) so that a sample lasts at least ``TimingConfig.min_sample_s`` (short ops are then not
  dominated by clock resolution, Python dispatch or launch latency).
- The result is the median over ``repeats`` samples, with p10 / p90 and the counts recorded.
  ``repeats`` shrinks (to ``min_repeats``) for slow ops so one measurement stays under
  ``max_total_s``; an op slower than ``max_op_s`` (when set) keeps its first sample alone, and
  its method says so.
- On a shared CPU (``TimingConfig.max_foreign_cpu`` set; CPU runs of ``experiments/run.py``), a
  measurement during which other processes kept more than that many cores busy on average (read
  from ``/proc``: the machine's busy time less this process's own, see ``CpuUsage``) is taken
  again, up to ``quiet_attempts`` times, after a pause; the quietest attempt is kept and its
  ``foreign_cpu`` and ``attempts`` are recorded. On a 2-core machine another process's single busy
  thread halves the two-thread lines (measured: a concurrent pytest made NumPy's dense matmul read
  33-42 ms for a 15 ms product, and one such burst, caught by the one shared measurement of
  dense-fp32, was reused by the ten cases of that shape).
- ``copies`` operand sets (see ``operand_copies``): when the working set is between half and a few
  times the last-level cache, consecutive runs rotate among copies so that data left in the cache
  by one run is not re-read by the next. A working set well inside the cache is timed warm (as in
  the survey: 128 back-to-back iterations on the same inputs, the steady state of a layer run
  again and again), one far larger than the cache is cold by itself; results record which.

The methods:
- ``JaxLoopTimer`` (every JAX line, CPU and GPU): the op runs ``inner`` times inside one jitted
  ``lax.fori_loop``; operands and a running scalar pass through ``lax.optimization_barrier`` each
  iteration, so XLA can neither hoist the op out of the loop nor shrink it to the one element the
  loop keeps. Wall time around one call (``block_until_ready``) divided by ``inner``: Python
  dispatch and launch overhead are paid once per sample, compilation not at all (compiled ahead of
  time). On GPU, XLA runs the loop on one stream, so this is back-to-back kernel time. The loop
  body holds ``UNROLL`` (8) calls of the op: an XLA while loop on a GPU synchronises with the host
  once per iteration (a ~25 us floor per iteration on an H100), which unrolling spreads over 8 ops.
- ``JaxCallTimer`` (sanity cross-check only): one jitted call per op, blocking on each; includes
  Python dispatch (a few microseconds) - the number a user calling an op eagerly sees.
- ``HostTimer`` (SciPy, NumPy, torch on CPU): ``time.perf_counter`` around ``inner`` synchronous
  calls. The Python call overhead of those libraries (~1-3 us) is part of their cost.
- ``TorchCudaTimer``: ``torch.cuda.Event`` pairs around ``inner`` back-to-back calls on the current
  stream, then ``synchronize``: device time, without host-side gaps at the ends.
- ``CupyTimer``: the same with ``cupy.cuda.Event``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
from typing import Any, Callable, ContextManager, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TimingConfig:
  """Knobs shared by every timer."""

  repeats: int = 10
  min_repeats: int = 3
  min_sample_s: float = 0.002
  max_total_s: float = 1.5
  max_inner: int = 10_000
  # An op slower than this (seconds) is measured by its first sample alone (``repeats`` = 1):
  # a pathological baseline (e.g. a bfloat16 scatter-add taking seconds) then costs one sample,
  # not the ~5 x 8 unrolled calls of a full measurement. None: no limit.
  max_op_s: float | None = None
  # Other processes' average CPU use (in cores) above which a measurement is retaken; None: never
  # (GPU runs: the host's load hardly moves device time).
  max_foreign_cpu: float | None = None
  # Measurements at most, when each finds the machine busier than max_foreign_cpu.
  quiet_attempts: int = 4
  # Seconds to wait before retaking a measurement (times the attempt number): a burst of another
  # process's work (a test run) usually lasts seconds.
  quiet_pause_s: float = 1.0


class CpuUsage:
  """CPU time spent by the whole machine and by this process, from Linux's ``/proc``.

  ``foreign_cores(since)`` is the average number of cores other processes kept busy between the
  snapshot ``since`` and now. Elsewhere (no ``/proc``) it is None. The counters tick at
  ``SC_CLK_TCK`` (100 Hz): over a 0.2 s measurement the figure is good to about +-0.1 core.
  """

  def __init__(self) -> None:
    self.wall = time.perf_counter()
    self.machine, self.own = self._read()

  @staticmethod
  def _read() -> tuple[int | None, int | None]:
    try:
      with open("/proc/stat") as stream:
        fields = stream.readline().split()
      # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait.
      values = [int(v) for v in fields[1:9]]
      machine = sum(values) - values[3] - values[4]
      with open("/proc/self/stat") as stream:
        # Fields after the command name (which may hold spaces): utime and stime are the 12th
        # and 13th after the closing parenthesis.
        rest = stream.read().rsplit(")", 1)[1].split()
      own = int(rest[11]) + int(rest[12])
      return machine, own
    except (OSError, ValueError, IndexError):
      return None, None

  def own_cores(self, since: "CpuUsage") -> float | None:
    """Average cores this process kept busy since the snapshot ``since``."""
    if self.own is None or since.own is None:
      return None
    return (self.own - since.own) / os.sysconf("SC_CLK_TCK") / max(self.wall - since.wall, 1e-9)

  def foreign_cores(self, since: "CpuUsage") -> float | None:
    if None in (self.machine, self.own, since.machine, since.own):
      return None
    ticks = os.sysconf("SC_CLK_TCK")
    wall = max(self.wall - since.wall, 1e-9)
    foreign = (self.machine - since.machine) - (self.own - since.own)
    return max(0.0, foreign / ticks / wall)


def wait_for_idle_process(window_s: float = 0.1, max_wait_s: float = 2.0) -> float:
  """Sleeps until this process stays idle for ``window_s`` (at most ``max_wait_s``); returns the
  seconds waited.

  A BLAS thread pool keeps its threads spinning after a call: OpenBLAS (NumPy's) holds a core
  busy for ~0.12 s after any threaded call, np.linalg.norm of a 2048 x 32 array included
  (measured through /proc on the 2-core EPYC). A measurement started in that window shares the
  cores with the spinning thread: the harness's correctness check (a norm) ran right before every
  measurement, and a quick measurement lasts 0.2 s, so JAX lines read up to 2x slow (XLA's
  2048 x 512 x 32 dot 940 us just after a NumPy matmul, 483 us 0.5 s later).
  """
  start = time.perf_counter()
  while time.perf_counter() - start < max_wait_s:
    before = CpuUsage()
    time.sleep(window_s)
    busy = CpuUsage().own_cores(before)
    if busy is None or busy < 0.15:  # one 10 ms tick of 0.1 s is noise, not a spinning thread
      break
  return time.perf_counter() - start


@dataclasses.dataclass(frozen=True)
class Measurement:
  """Per-op time statistics, in microseconds."""

  median_us: float
  p10_us: float
  p90_us: float
  repeats: int
  inner: int
  copies: int
  method: str
  # Other processes' average CPU use during the measurement, in cores (None: not read).
  foreign_cpu: float | None = None
  # Measurements taken (more than 1: earlier ones found the machine busy).
  attempts: int = 1

  def asdict(self) -> dict:
    return dataclasses.asdict(self)


def operand_copies(working_set_bytes: int, cache_bytes: int, *, max_copies: int = 4) -> int:
  """How many operand sets to rotate among: 1 when the working set is well inside the cache
  (timed warm) or far larger (cold by itself), else enough copies for about 3x the cache."""
  if working_set_bytes <= 0 or working_set_bytes < cache_bytes / 2:
    return 1
  return int(min(max_copies, max(1, math.ceil(3 * cache_bytes / working_set_bytes))))


def cache_state(working_set_bytes: int, cache_bytes: int, copies: int) -> str:
  """"warm" when the data a run reads may still be in the cache from the previous run."""
  return "cold" if working_set_bytes * copies >= 2 * cache_bytes else "warm"


class Timer:
  """Runs one prepared op: ``run_once`` (warm-up; returns the output to check), ``measure``."""

  method = "abstract"

  def run_once(self) -> Any:
    """One op (the loop timer: one iteration), waited for; its output."""
    out = self.launch(0)
    self.synchronize(out)
    return out

  def run_single(self) -> tuple[Any, float]:
    """One op, synchronised: (its output, wall seconds). ``run_once`` may run several ops (the
    loop timer's one iteration); the harness uses this to size up an op before measuring it."""
    start = time.perf_counter()
    out = self.run_once()
    return out, time.perf_counter() - start

  def measure(self, config: TimingConfig) -> Measurement:
    raise NotImplementedError

  def launch(self, index: int = 0) -> Any:
    """Issues one op on operand copy ``index % copies`` without waiting for it; returns a handle
    for ``synchronize`` (the output, or None). Used to time each op's kernels alone
    (``experiments.kernel_time``)."""
    raise NotImplementedError

  def synchronize(self, handle: Any) -> None:
    """Waits until the op ``launch`` returned ``handle`` for has finished on the device."""
    raise NotImplementedError

  def _measure_with(self, sample: Callable[[int], float], config: TimingConfig,
                    copies: int) -> Measurement:
    """Shared calibration and statistics; ``sample(inner)`` returns seconds for ``inner`` ops.
    Retaken while other processes load the CPU (``TimingConfig.max_foreign_cpu``); the attempt
    that saw the least foreign load is kept."""
    kept = None
    for attempt in range(1, max(1, config.quiet_attempts) + 1):
      if config.max_foreign_cpu is not None:
        wait_for_idle_process()
      before = CpuUsage()
      measured = self._measure_once(sample, config, copies)
      foreign = CpuUsage().foreign_cores(before)
      measured = dataclasses.replace(measured, foreign_cpu=foreign, attempts=attempt)
      if kept is None or (foreign is not None and foreign < kept.foreign_cpu):
        kept = dataclasses.replace(measured, attempts=attempt)
      if config.max_foreign_cpu is None or foreign is None or foreign <= config.max_foreign_cpu:
        break
      time.sleep(config.quiet_pause_s * attempt)
    return dataclasses.replace(kept, attempts=attempt)

  def _measure_once(self, sample: Callable[[int], float], config: TimingConfig,
                    copies: int) -> Measurement:
    # Doubling (as timeit.autorange). Each step keeps the faster of two samples: a single slow
    # call (a clock ramp, an allocation, another process) must not stop the calibration at a
    # small ``inner`` where per-call dispatch would dominate the figure.
    inner = 1
    elapsed = sample(inner)
    if config.max_op_s is not None and elapsed > config.max_op_s:
      return Measurement(elapsed * 1e6, elapsed * 1e6, elapsed * 1e6, 1, inner, copies,
                         f"{self.method} (one sample: slower than {config.max_op_s:g} s an op)")
    elapsed = min(elapsed, sample(inner))
    while elapsed < config.min_sample_s and inner < config.max_inner:
      inner = min(config.max_inner, 2 * inner)
      elapsed = min(sample(inner), sample(inner))
    per_op = max(elapsed / inner, 1e-9)
    affordable = int(config.max_total_s / max(per_op * inner, 1e-9))
    repeats = max(config.min_repeats, min(config.repeats, affordable))
    times = np.array([sample(inner) / inner for _ in range(repeats)]) * 1e6
    return Measurement(float(np.median(times)), float(np.percentile(times, 10)),
                       float(np.percentile(times, 90)), repeats, inner, copies, self.method)


def _tied(operands: tuple, scalar: jax.Array) -> tuple:
  """``operands`` with ``0 * scalar`` added in place to the first element of their smallest
  numeric leaf (e.g. a CSR matrix's row offsets): the same values (for a finite scalar), but a
  data dependency on ``scalar`` that no compiler pass can see through (XLA does not fold
  ``x * 0`` for floats), at the cost of touching the smallest array (a large one measured up to
  20% slower on the reference lowering)."""
  leaves, treedef = jax.tree_util.tree_flatten(operands)
  candidates = [index for index, leaf in enumerate(leaves)
                if leaf.size > 0 and (jnp.issubdtype(leaf.dtype, jnp.floating)
                                      or jnp.issubdtype(leaf.dtype, jnp.integer))]
  if candidates:
    index = min(candidates, key=lambda i: leaves[i].size)
    leaf = leaves[index]
    zero = (scalar * 0).astype(leaf.dtype)
    leaves[index] = leaf.at[(0,) * leaf.ndim].add(zero)
  return jax.tree_util.tree_unflatten(treedef, leaves)


def _check_same_avals(old: Any, new: Any) -> None:
  """Raises ValueError unless the pytrees ``old`` and ``new`` match in structure, shapes and
  dtypes (a compiled program takes only operands like those it was compiled for)."""
  def avals(tree):
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, [(jnp.shape(x), jnp.result_type(x)) for x in leaves]
  if avals(old) != avals(new):
    raise ValueError("with_operands: the new operands differ in structure, shape or dtype from "
                     "those the timer was compiled for")


def _first_scalar(tree: Any) -> jax.Array:
  leaf = jax.tree_util.tree_leaves(tree)[0]
  return jnp.reshape(leaf, (-1,))[0].astype(jnp.float32)


# Ops per loop iteration of ``JaxLoopTimer`` (and per copy of the operands).
UNROLL = 8


class JaxLoopTimer(Timer):
  """``fn(*operands)`` run ``inner`` times in one jitted ``fori_loop`` (see the module docstring).

  Args:
    fn: a traceable function of the operands (arrays or pytrees such as sparse matrices).
    operand_sets: one operand tuple per copy, already on the device.
    trace_context: entered while tracing and compiling (e.g. a ``jax.config`` flag that selects a
      lowering, such as ``jax_bcoo_cusparse_lowering``); the compiled program keeps its choice.
  """

  method = "jax-fori-loop"

  def __init__(self, fn: Callable[..., Any], operand_sets: Sequence[tuple],
               trace_context: Callable[[], ContextManager] = contextlib.nullcontext,
               unroll: int = UNROLL):
    self._sets = tuple(tuple(s) for s in operand_sets)
    self._unroll = unroll
    self._fn, self._trace_context, self._single = fn, trace_context, None
    leaves = jax.tree_util.tree_leaves(self._sets)
    tie = all(device.platform == "cpu" for leaf in leaves
              for device in getattr(leaf, "devices", lambda: set())())
    out_shape = jax.eval_shape(fn, *self._sets[0])

    def loop(sets, iterations):
      def body(_, carry):
        sets, acc, out = carry
        # Each iteration runs the op ``unroll`` times per copy: an XLA while loop on a GPU
        # synchronises with the host once per iteration (~25 us on an H100, measured), which
        # would otherwise be charged to every op.
        for _ in range(unroll):
          # acc changes every time, so the barrier's outputs (the operands) are not loop
          # invariant: the op cannot be hoisted, and it is recomputed on every copy.
          sets, acc = jax.lax.optimization_barrier((sets, acc))
          # The barrier alone did not stop jaxlib 0.10.2's CPU compiler from merging the
          # unrolled calls of a side-effect-free custom call into one (8x too fast, measured):
          # on the CPU each call's operands also take acc in, through an in-place add of
          # 0 * acc. Not on GPUs, where that add would be one more kernel launch per op and
          # jaxlib 0.11.2 keeps the calls apart (the timing cross-check agrees with CUDA events).
          if tie:
            sets = tuple(_tied(operands, acc) for operands in sets)
          for operands in sets:
            out = jax.lax.optimization_barrier(fn(*operands))
            acc = acc + _first_scalar(out)
        return sets, acc, out

      zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), out_shape)
      _, acc, out = jax.lax.fori_loop(0, iterations, body, (sets, jnp.float32(0), zeros))
      return acc, out

    with trace_context():
      self._compiled = jax.jit(loop).lower(self._sets, jnp.int32(1)).compile()

  def _call(self, iterations: int) -> tuple[Any, float]:
    start = time.perf_counter()
    acc, out = self._compiled(self._sets, jnp.int32(iterations))
    jax.block_until_ready((acc, out))
    return out, time.perf_counter() - start

  def run_once(self) -> Any:
    return self.run(1)

  @property
  def ops_per_iteration(self) -> int:
    """Ops one loop iteration runs: ``unroll`` per operand copy."""
    return len(self._sets) * self._unroll

  def run(self, iterations: int) -> Any:
    """The compiled loop run ``iterations`` times (each ``unroll`` ops per copy), blocking; its
    last output (e.g. to trace a known number of ops with ``jax.profiler``)."""
    return self._call(iterations)[0]

  def with_operands(self, operand_sets: Sequence[tuple]) -> "JaxLoopTimer":
    """A timer of the same compiled loop on other operands of the same shapes and dtypes (no
    recompilation: e.g. the masks of several densities padded to one length)."""
    sets = tuple(tuple(s) for s in operand_sets)
    _check_same_avals(self._sets, sets)
    timer = copy.copy(self)
    timer._sets, timer._single = sets, None
    return timer

  def _single_program(self) -> Any:
    """The op alone as its own compiled program (compiled on first use)."""
    if self._single is None:
      # A new function each time: jit's cache is keyed on the function, not on what the trace
      # context or the environment changed (e.g. ``JSPARSE_CSR_SPMM_PATH``, read at lowering),
      # so two timers of one ``fn`` would otherwise share the first one's program.
      with self._trace_context():
        self._single = jax.jit(lambda *operands: self._fn(*operands)).lower(
            *self._sets[0]).compile()
    return self._single

  def run_single(self) -> tuple[Any, float]:
    # The first call's time includes the one-op program's compilation.
    start = time.perf_counter()
    program = self._single_program()
    out = jax.block_until_ready(program(*self._sets[0]))
    return out, time.perf_counter() - start

  def launch(self, index: int = 0) -> Any:
    """One op, as the one-op program (not the loop: no running sum, no loop kernels)."""
    return self._single_program()(*self._sets[index % len(self._sets)])

  def synchronize(self, handle: Any) -> None:
    jax.block_until_ready(handle)

  def measure(self, config: TimingConfig) -> Measurement:
    copies = len(self._sets)
    per_iteration = self.ops_per_iteration

    def sample(inner: int) -> float:
      # One loop iteration runs the op ``unroll`` times per copy: scale to ``inner`` ops.
      iterations = max(1, math.ceil(inner / per_iteration))
      return self._call(iterations)[1] * inner / (iterations * per_iteration)
    return self._measure_with(sample, config, copies)


class JaxCallTimer(Timer):
  """One jitted call per op, blocking on each (dispatch included)."""

  method = "jax-per-call"

  def __init__(self, fn: Callable[..., Any], operands: tuple):
    self._fn = jax.jit(fn).lower(*operands).compile()
    self._operands = operands

  def launch(self, index: int = 0) -> Any:
    return self._fn(*self._operands)

  def synchronize(self, handle: Any) -> None:
    jax.block_until_ready(handle)

  def with_operands(self, operand_sets: Sequence[tuple]) -> "JaxCallTimer":
    """As ``JaxLoopTimer.with_operands`` (one operand set: the first is used)."""
    operands = tuple(operand_sets[0])
    _check_same_avals((self._operands,), (operands,))
    timer = copy.copy(self)
    timer._operands = operands
    return timer

  def measure(self, config: TimingConfig) -> Measurement:
    def sample(inner: int) -> float:
      start = time.perf_counter()
      for _ in range(inner):
        jax.block_until_ready(self._fn(*self._operands))
      return time.perf_counter() - start
    return self._measure_with(sample, config, 1)


class HostTimer(Timer):
  """Synchronous host calls, ``calls[i % copies]()`` for the i-th op of a sample."""

  method = "host-perf-counter"

  def __init__(self, calls: Sequence[Callable[[], Any]], sync: Callable[[], None] = lambda: None):
    self._calls = list(calls)
    self._sync = sync

  def launch(self, index: int = 0) -> Any:
    return self._calls[index % len(self._calls)]()

  def synchronize(self, handle: Any) -> None:
    self._sync()

  def measure(self, config: TimingConfig) -> Measurement:
    calls = self._calls

    def sample(inner: int) -> float:
      self._sync()
      start = time.perf_counter()
      for i in range(inner):
        calls[i % len(calls)]()
      self._sync()
      return time.perf_counter() - start
    return self._measure_with(sample, config, len(calls))


class _EventTimer(Timer):
  """Device events around ``inner`` back-to-back calls (torch.cuda or cupy.cuda)."""

  def __init__(self, calls: Sequence[Callable[[], Any]]):
    self._calls = list(calls)

  def _event(self) -> Any:
    raise NotImplementedError

  def _synchronize(self) -> None:
    raise NotImplementedError

  @staticmethod
  def _elapsed_s(start: Any, end: Any) -> float:
    raise NotImplementedError

  def launch(self, index: int = 0) -> Any:
    return self._calls[index % len(self._calls)]()

  def synchronize(self, handle: Any) -> None:
    self._synchronize()

  def measure(self, config: TimingConfig) -> Measurement:
    calls = self._calls

    def sample(inner: int) -> float:
      start, end = self._event(), self._event()
      start.record()
      for i in range(inner):
        calls[i % len(calls)]()
      end.record()
      end.synchronize()
      return self._elapsed_s(start, end)
    return self._measure_with(sample, config, len(calls))


class TorchCudaTimer(_EventTimer):
  method = "torch-cuda-events"

  def _event(self) -> Any:
    import torch
    return torch.cuda.Event(enable_timing=True)

  def _synchronize(self) -> None:
    import torch
    torch.cuda.synchronize()

  @staticmethod
  def _elapsed_s(start: Any, end: Any) -> float:
    return start.elapsed_time(end) / 1e3


class CupyTimer(_EventTimer):
  method = "cupy-cuda-events"

  def _event(self) -> Any:
    import cupy
    return cupy.cuda.Event()

  def _synchronize(self) -> None:
    import cupy
    cupy.cuda.Device().synchronize()

  @staticmethod
  def _elapsed_s(start: Any, end: Any) -> float:
    import cupy
    return cupy.cuda.get_elapsed_time(start, end) / 1e3
