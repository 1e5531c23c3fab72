"""jsparse._gpu.csr: the registered wrappers, their refusals, and the public ops through them."""

import functools
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import csr as gpu_csr
from jsparse.formats.layout import SparseLayout
from jsparse.ops import registry
from tests.pallas_kernels import csr_cases as cases


def _dense(rng):
  dense = rng.standard_normal((7, 6)).astype(np.float32)
  dense[np.abs(dense) < 0.7] = 0
  dense[2], dense[4] = 0, rng.uniform(0.5, 1.5, 6)  # an empty row and a full one
  return dense


def test_wrappers_match_float64():
  # The wrappers use the kernels' default configs (choose_config), which this covers. The
  # matrix is built from host arrays directly (CSR.fromdense would compile its validation).
  rng = np.random.default_rng()
  dense = _dense(rng)
  rows, cols = np.nonzero(dense)  # row-major: the CSR storage order
  offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=7))])
  A = types.SimpleNamespace(
      data=jnp.asarray(dense[rows, cols]), layout=SparseLayout("csr", dense.shape),
      index_arrays=(jnp.asarray(cols, jnp.int32), jnp.asarray(offsets, jnp.int32)))
  b = rng.standard_normal((6, 3)).astype(np.float32)
  x, y = rng.standard_normal((7, 2)).astype(np.float32), rng.standard_normal((6, 2)).astype(
      np.float32)
  dense64 = dense.astype(np.float64)
  params = dict(layout=A.layout, interpret=cases.INTERPRET, transpose=False, impl="pallas")
  out = gpu_csr._spmm(A.data, *A.index_arrays, jnp.asarray(b), **params)
  np.testing.assert_allclose(out, dense64 @ b, rtol=1e-5, atol=1e-5)
  out = gpu_csr._spmv(A.data, *A.index_arrays, jnp.asarray(b[:, 0]), **params)
  np.testing.assert_allclose(out, dense64 @ b[:, 0], rtol=1e-5, atol=1e-5)
  values = gpu_csr._sddmm(*A.index_arrays, jnp.asarray(x), jnp.asarray(y), layout=A.layout,
                          interpret=cases.INTERPRET, impl="pallas")
  expected = np.sum(x[rows].astype(np.float64) * y[cols], axis=1)
  np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5)


def test_supports_explains_refusals():
  f32, i32 = jax.ShapeDtypeStruct((4,), jnp.float32), jax.ShapeDtypeStruct((4,), jnp.int32)
  dense = jax.ShapeDtypeStruct((3, 2), jnp.float32)
  assert gpu_csr._supports_product((f32, i32, i32, dense), {"transpose": False}) is True
  assert "transpose" in gpu_csr._supports_product((f32, i32, i32, dense), {"transpose": True})
  f64 = jax.ShapeDtypeStruct((4,), jnp.float64)
  assert "float64" in gpu_csr._supports_product((f64, i32, i32, dense), {"transpose": False})
  i64 = jax.ShapeDtypeStruct((4,), jnp.int64)
  assert "int64" in gpu_csr._supports_sddmm((i64, i32, dense, dense), {})


def test_registered_as_cuda_pallas():
  for op in ("spmm", "spmv", "sddmm"):
    assert registry.registered_kernels(op, "csr", "cuda"), op


@pytest.mark.skipif(not any(k.impl == "pallas" for k in registry.registered_kernels(
                        "spmm", "csr", jax.default_backend().replace("gpu", "cuda"))),
                    reason="the CSR kernels are registered on the CPU only with "
                    "JSPARSE_PALLAS_INTERPRET=1 set before importing jsparse")
def test_public_ops_and_gradient_through_pallas():
  rng = np.random.default_rng()
  dense = _dense(rng)
  A = jsparse.CSR.fromdense(dense)
  b = jnp.asarray(rng.standard_normal((6, 3)).astype(np.float32))
  np.testing.assert_allclose(jsparse.spmm(A, b, impl="pallas"),
                             dense.astype(np.float64) @ np.asarray(b), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jsparse.spmv(A, b[:, 0], impl="pallas"),
                             dense.astype(np.float64) @ np.asarray(b[:, 0]), rtol=1e-5, atol=1e-5)
  loss = lambda impl: jax.grad(
      lambda data: jnp.sum(jsparse.spmm(A.with_data(data), b, impl=impl) ** 2))(A.data)
  np.testing.assert_allclose(loss("pallas"), loss("reference"), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel,width", [("spmm", 40), ("spmm", 64), ("spmm", 32),
                                          ("spmm-2rows", 128), ("spmv", 1),
                                          ("sddmm", 300), ("sddmm", 256), ("sddmm-2rows", 128)])
def test_kernels_lower_to_triton_for_h100(kernel, width, monkeypatch):
  # Lowers (no run) each kernel through the Pallas Triton backend for CUDA on any machine, so
  # CI catches what interpret mode accepts but Triton does not. Private jax 0.11.2 hooks: the
  # GPU description that the lowering would read from a device is given instead.
  from jax._src.pallas.triton import gpu_info, pallas_call_registration
  from pallas_kernels import csr_sddmm, csr_spmm, csr_spmv
  monkeypatch.setattr(pallas_call_registration.gpu_info_lib, "get_gpu_info",
                      lambda: gpu_info.get_gpu_info_from_version(gpu_info.GpuVersion.H100))
  rows, nse = 64, 6400  # mean row 100: several nonzero steps per row
  struct = jax.ShapeDtypeStruct
  index = (struct((nse,), jnp.int32), struct((rows + 1,), jnp.int32))
  data = struct((nse,), jnp.bfloat16)
  fn, operands = {
      # Widths N / D that are and are not multiples of the tile (masked or unmasked columns).
      "spmm": (csr_spmm.kernel_fn, (data, *index, struct((64, width), jnp.bfloat16))),
      "spmm-2rows": (functools.partial(csr_spmm.kernel_fn, config=csr_spmm.SpmmConfig(
          block_n=64, block_nnz=32, rows_per_program=2)),
                     (data, *index, struct((64, width), jnp.bfloat16))),
      "sddmm-2rows": (functools.partial(csr_sddmm.kernel_fn, config=csr_sddmm.SddmmConfig(
          block_nnz=32, block_d=128, num_warps=8, rows_per_program=2)),
                      (*index, struct((rows, width), jnp.float32), struct((64, width), jnp.float32))),
      "spmv": (csr_spmv.kernel_fn, (data, *index, struct((64,), jnp.bfloat16))),
      "sddmm": (csr_sddmm.kernel_fn, (*index, struct((rows, width), jnp.float32),
                                      struct((64, width), jnp.float32))),
  }[kernel]
  lowered = jax.jit(lambda *args: fn(*args, num_rows=rows)).trace(*operands).lower(
      lowering_platforms=("cuda",))
  from jax.experimental.pallas import triton as plgpu
  assert plgpu.CUSTOM_CALL_TARGET_NAME in lowered.as_text()


@pytest.mark.parametrize("op,nse,width,itemsize,in_order", [
    # DLMC-sized calls: the schedule's ~10-15 us would exceed what it saves.
    ("spmm", 524288, 128, 4, True), ("sddmm", 524288, 128, 4, True), ("spmv", 131072, 1, 4, True),
    # Calls modeled past SCHEDULE_MIN_KERNEL_US keep the schedule.
    ("spmm", 4096 * 4096 // 2, 1024, 4, False), ("sddmm", 4096 * 4096 // 10, 1024, 4, False),
    ("spmv", 16384 * 16384 // 3, 1, 4, False)])
def test_schedule_only_where_it_can_pay(op, nse, width, itemsize, in_order):
  layout = SparseLayout("csr", (4096, 4096))
  assert gpu_csr.launches_in_order(layout, op, nse, width, itemsize) is in_order
  # A layout whose rows need no schedule launches in order whatever the size.
  natural = SparseLayout("csr", (4096, 4096), natural_row_order=True)
  assert gpu_csr.launches_in_order(natural, op, nse, width, itemsize) is True
  with pytest.raises(ValueError, match="op must be 'spmm', 'spmv' or 'sddmm', got 'spmmv'"):
    gpu_csr.launches_in_order(layout, "spmmv", nse, width, itemsize)


def test_wrappers_pass_the_launch_order(monkeypatch):
  # What each wrapper hands the row kernel: in order for a small call on an unbalanced matrix,
  # scheduled once the modeled kernel time passes the threshold.
  seen = []
  for module in (gpu_csr.csr_spmm, gpu_csr.csr_spmv, gpu_csr.csr_sddmm):
    monkeypatch.setattr(module, "kernel_fn", lambda *a, natural_order, **k: seen.append(
        natural_order))
  monkeypatch.setattr(gpu_csr, "takes_dense_path", lambda *a: False)
  monkeypatch.setattr(gpu_csr.csr_sddmm_dense, "prefers_dense", lambda *a: False)
  layout = SparseLayout("csr", (8, 8))
  s = jax.ShapeDtypeStruct
  data, cols, offsets = s((20,), jnp.float32), s((20,), jnp.int32), s((9,), jnp.int32)
  for threshold in (gpu_csr.SCHEDULE_MIN_KERNEL_US, 0.0):
    monkeypatch.setattr(gpu_csr, "SCHEDULE_MIN_KERNEL_US", threshold)
    gpu_csr._spmm(data, cols, offsets, s((8, 4), jnp.float32), interpret=True, layout=layout)
    gpu_csr._spmv(data, cols, offsets, s((8,), jnp.float32), interpret=True, layout=layout)
    gpu_csr._sddmm(cols, offsets, s((8, 4), jnp.float32), s((8, 4), jnp.float32),
                   interpret=True, layout=layout)
  assert seen == [True] * 3 + [False] * 3
