"""Which kernel lowers ``jsparse.spmm(A_bsr, B, impl="pallas")``: Mosaic GPU or Triton.

``jsparse._gpu.structured.choose_bsr_kernel`` is pure Python over shapes, dtypes, the device's
compute capability and ``JSPARSE_BSR_KERNEL``; these tests pin its decisions on the CPU, check
that the public op lowers (for CUDA, without a GPU) to the kernel it names, run the lowering's
Mosaic GPU path in interpret mode, and, on a Hopper GPU, compare the public op through the Mosaic
GPU kernel with the reference lowering.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import structured as wrapper
from jsparse.formats.layout import SparseLayout
from tests.pallas_kernels import dispatch_cases, structured_cases as cases
from tests.pallas_kernels.dispatch_cases import AMPERE, HOPPER



def avals(*, shape=(4096, 4096), block_shape=(64, 64), n=128, nse=400, dtype=jnp.bfloat16):
  """data, col_indices, row_offsets, dense as ShapeDtypeStructs, and the matrix's layout."""
  (bm, bk), struct = block_shape, jax.ShapeDtypeStruct
  operands = (struct((nse, bm, bk), dtype), struct((nse,), jnp.int32),
              struct((shape[0] // bm + 1,), jnp.int32), struct((shape[1], n), dtype))
  return operands, SparseLayout("bsr", shape, block_shape)


@pytest.mark.parametrize("change", [
    dict(), dict(n=1024), dict(block_shape=(128, 64)), dict(shape=(14336, 4096), n=1024),
    dict(dtype=jnp.float16), dict(n=64), dict(block_shape=(64, 16))])
def test_hopper_and_supported_picks_mosaic(change):
  operands, layout = avals(**change)
  assert wrapper.choose_bsr_kernel(operands, layout, interpret=False, capability=HOPPER) == (
      "mosaic", "Hopper, within the Mosaic GPU kernel's restrictions")


@pytest.mark.parametrize("change, capability, interpret, expected_why", [
    (dict(), AMPERE, False, "not a Hopper"),
    (dict(), (10, 0), False, "not a Hopper"),
    (dict(), None, False, "not a Hopper"),  # lowering for CUDA without a CUDA device
    (dict(), HOPPER, True, "interpret mode"),
    (dict(dtype=jnp.float32), HOPPER, False, "float16 or bfloat16"),
    (dict(block_shape=(32, 64)), HOPPER, False, "block_shape[0] (bm) must be a multiple of 64"),
    (dict(block_shape=(16, 16)), HOPPER, False, "block_shape[0] (bm) must be a multiple of 64"),
    (dict(block_shape=(64, 8)), HOPPER, False, "block_shape[1]"),
    (dict(n=100), HOPPER, False, "must be a multiple of config.tile_n"),
    (dict(n=1), HOPPER, False, "must be a multiple of config.tile_n"),  # SpMV
])
def test_other_calls_pick_triton_and_say_why(change, capability, interpret, expected_why):
  operands, layout = avals(**change)
  kernel, why = wrapper.choose_bsr_kernel(operands, layout, interpret=interpret,
                                          capability=capability)
  assert kernel == "triton"
  assert expected_why in why


def test_environment_variable_overrides_the_choice(monkeypatch):
  operands, layout = avals()
  monkeypatch.setenv(wrapper.BSR_KERNEL_ENV_VAR, "triton")
  assert wrapper.choose_bsr_kernel(operands, layout, interpret=False, capability=HOPPER,
                                   choice=wrapper.bsr_kernel_choice())[0] == "triton"
  monkeypatch.setenv(wrapper.BSR_KERNEL_ENV_VAR, "mosaic")
  for interpret, capability in ((True, None), (False, AMPERE)):  # no device check when forced
    assert wrapper.choose_bsr_kernel(operands, layout, interpret=interpret,
                                     capability=capability,
                                     choice=wrapper.bsr_kernel_choice())[0] == "mosaic"
  with pytest.raises(ValueError, match=r"JSPARSE_BSR_KERNEL=mosaic, but .* float16 or bfloat16"):
    wrapper.choose_bsr_kernel(*avals(dtype=jnp.float32), interpret=False, capability=HOPPER,
                              choice=wrapper.bsr_kernel_choice())
  monkeypatch.setenv(wrapper.BSR_KERNEL_ENV_VAR, "")
  assert wrapper.bsr_kernel_choice() == "auto"
  monkeypatch.setenv(wrapper.BSR_KERNEL_ENV_VAR, "cusparse")
  with pytest.raises(ValueError, match="JSPARSE_BSR_KERNEL must be one of"):
    wrapper.bsr_kernel_choice()


def _matrix_and_dense(rng, *, shape=(256, 128), block_shape=(64, 32), n=64, density=0.5,
                      dtype=jnp.bfloat16):
  dense64 = cases.block_sparse_dense(rng, shape, block_shape, density, dtype,
                                     empty_block_rows=[1])
  matrix = jsparse.BSR.fromdense(jnp.asarray(dense64, dtype), block_shape=block_shape)
  b, b64 = cases.dense_operand(rng, (shape[1], n), dtype)
  return matrix, dense64, b, b64


@pytest.mark.parametrize("capability, expected, absent", [
    (HOPPER, "mosaic_gpu", "triton"), (AMPERE, "triton", "mosaic_gpu")])
def test_public_op_lowers_to_the_chosen_kernel_without_a_gpu(monkeypatch, capability, expected,
                                                              absent):
  """The registered lowering of ``jsparse.spmm`` on BSR for CUDA (lowered on any host; no PTX
  is generated) calls the kernel ``choose_bsr_kernel`` picks for the device."""
  dispatch_cases.pretend_cuda_device(monkeypatch, wrapper, capability, wrapper.BSR_KERNEL_ENV_VAR)
  matrix, _, b, _ = _matrix_and_dense(np.random.default_rng(0), shape=(512, 256), n=128)
  spmm = jax.jit(lambda a, b: jsparse.spmm(a, b, impl="pallas"))
  text = spmm.trace(matrix, b).lower(lowering_platforms=("cuda",)).as_text()
  assert expected in text and absent not in text


def test_lowering_runs_the_mosaic_kernel_in_interpret_mode(monkeypatch):
  """``JSPARSE_BSR_KERNEL=mosaic`` with interpret mode (compiled on a Hopper GPU): the BSR
  lowering passes the matrix's shape to the Mosaic GPU kernel and matches the reference
  lowering; ragged and empty block rows. The lowering function is called directly, as the
  attention dispatch test does: through ``jsparse.spmm`` the interpreter's ordered callbacks
  have no effect token in the primitive's ``lower_fun``."""
  interpret = jax.default_backend() != "gpu"
  if not interpret and wrapper.cuda_capability() != HOPPER:
    pytest.skip(f"the Mosaic GPU kernel needs sm_90, this GPU is {wrapper.cuda_capability()}")
  monkeypatch.setenv(wrapper.BSR_KERNEL_ENV_VAR, "mosaic")
  matrix, dense64, b, b64 = _matrix_and_dense(np.random.default_rng())
  layout = SparseLayout("bsr", matrix.shape, matrix.block_shape)
  out = wrapper._spmm_bsr(matrix.data, matrix.col_indices, matrix.row_offsets, b,
                          interpret=interpret, layout=layout)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  np.testing.assert_allclose(np.asarray(out, np.float64),
                             np.asarray(jsparse.spmm(matrix, b, impl="reference"), np.float64),
                             atol=2e-2, rtol=2e-2)


@pytest.mark.gpu
@pytest.mark.parametrize("block_shape, n, density", [((64, 64), 128, 0.2),
                                                     ((128, 64), 1024, 0.5)])
def test_public_op_on_hopper_runs_mosaic_and_matches_reference(block_shape, n, density):
  """Compiled (Hopper GPU only): ``impl="pallas"`` lowers to the Mosaic GPU kernel and agrees
  with ``impl="reference"``."""
  if wrapper.cuda_capability() != HOPPER:
    pytest.skip(f"the Mosaic GPU kernel needs sm_90, this GPU is {wrapper.cuda_capability()}")
  matrix, dense64, b, b64 = _matrix_and_dense(np.random.default_rng(), shape=(2048, 1024),
                                              block_shape=block_shape, n=n, density=density)
  operands = (matrix.data, matrix.col_indices, matrix.row_offsets, b)
  kernel, why = wrapper.choose_bsr_kernel(operands, SparseLayout("bsr", matrix.shape, block_shape),
                                          interpret=False, capability=HOPPER,
                                          choice=wrapper.bsr_kernel_choice())
  if kernel != "mosaic":
    pytest.skip(f"the dispatch picks Triton here: {why}")

  def spmm(impl):
    return jax.jit(lambda a, b: jsparse.spmm(a, b, impl=impl))

  assert "mosaic_gpu" in spmm("pallas").lower(matrix, b).as_text()
  out = spmm("pallas")(matrix, b)
  cases.check_spmm(out, dense64, b, b64, jnp.bfloat16)
  np.testing.assert_allclose(np.asarray(out, np.float64),
                             np.asarray(spmm("reference")(matrix, b), np.float64),
                             atol=5e-2, rtol=2e-2)
