"""Which kernel lowers ``jsparse.block_sparse_attention(impl="pallas")``: Mosaic GPU or Triton.

``jsparse._gpu.attention.choose_kernel`` is pure Python over shapes, dtypes, the mask blocks, the
device's compute capability and ``JSPARSE_ATTENTION_KERNEL``; these tests pin its decisions on
the CPU, check that the public op lowers (for CUDA, without a GPU) to the kernel it names, run
the wrapper's Mosaic GPU path in interpret mode, and, on a Hopper GPU, compare the public op
through the Mosaic GPU kernel with the reference lowering.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jsparse
from jsparse._gpu import attention as wrapper
from jsparse.ops.attention import AttentionLayout
from tests.pallas_kernels import dispatch_cases
from tests.pallas_kernels.dispatch_cases import AMPERE, HOPPER

BENCH = dict(batch=4, q_len=8192, kv_len=8192, heads=16, kv_heads=16, block_size=(128, 128))


def avals(*, batch=2, q_len=1024, kv_len=1024, heads=8, kv_heads=2, head_dim=64,
          dtype=jnp.bfloat16, block_size=(128, 128), mask_heads=None):
  """q, k, v, indices, counts as ShapeDtypeStructs (every key block listed)."""
  bq, bk = block_size
  nqb, nkb = -(-q_len // bq), -(-kv_len // bk)
  mask_heads = heads if mask_heads is None else mask_heads
  return (jax.ShapeDtypeStruct((batch, q_len, heads, head_dim), dtype),
          jax.ShapeDtypeStruct((batch, kv_len, kv_heads, head_dim), dtype),
          jax.ShapeDtypeStruct((batch, kv_len, kv_heads, head_dim), dtype),
          jax.ShapeDtypeStruct((mask_heads, nqb, nkb), jnp.int32),
          jax.ShapeDtypeStruct((mask_heads, nqb), jnp.int32))


def layout(block_size=(128, 128), causal=False):
  return AttentionLayout(block_size=block_size, causal=causal, scale=0.125)


@pytest.mark.parametrize("head_dim", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_benchmark_shapes_pick_mosaic_on_hopper(head_dim, causal):
  kernel, why = wrapper.choose_kernel(avals(**BENCH, head_dim=head_dim), layout(causal=causal),
                                      interpret=False, capability=HOPPER)
  if causal and "miscompiled" in str(wrapper._mgpu().supports(
      *avals(**BENCH, head_dim=head_dim), block_size=(128, 128), causal=True)):
    assert kernel == "triton"  # a CUDA runtime whose ptxas miscompiles causal masks
  else:
    assert (kernel, why) == ("mosaic", "Hopper prefill within the Mosaic GPU kernel's "
                             "restrictions")


@pytest.mark.parametrize("change, capability, interpret, expected_why", [
    (dict(), AMPERE, False, "not a Hopper"),
    (dict(), (10, 0), False, "not a Hopper"),
    (dict(), None, False, "not a Hopper"),  # lowering for CUDA without a CUDA device
    (dict(), HOPPER, True, "interpret mode"),
    (dict(q_len=1, block_size=(16, 64)), HOPPER, False, "decoding"),
    (dict(q_len=16, block_size=(16, 128)), HOPPER, False, "decoding"),
    (dict(dtype=jnp.float32), HOPPER, False, "float16 or bfloat16"),
    (dict(head_dim=32), HOPPER, False, "head dim"),
    (dict(head_dim=256), HOPPER, False, "head dim"),
    (dict(q_len=1000), HOPPER, False, "multiple of 2 * config.block_q"),  # ragged queries
    (dict(kv_len=1000), HOPPER, False, "multiple of block_size[1]"),  # ragged keys
    (dict(block_size=(64, 64)), HOPPER, False, "block_size[0] must be a multiple"),
    (dict(block_size=(128, 32)), HOPPER, False, "block_size[1] must be a multiple"),
])
def test_other_calls_pick_triton_and_say_why(change, capability, interpret, expected_why):
  kernel, why = wrapper.choose_kernel(avals(**change), layout(change.get("block_size",
                                                                         (128, 128))),
                                      interpret=interpret, capability=capability)
  assert kernel == "triton"
  assert expected_why in why


def test_environment_variable_overrides_the_choice(monkeypatch):
  args = avals(**BENCH)
  monkeypatch.setenv(wrapper.KERNEL_ENV_VAR, "triton")
  assert wrapper.choose_kernel(args, layout(), interpret=False, capability=HOPPER,
                               choice=wrapper.kernel_choice())[0] == "triton"
  monkeypatch.setenv(wrapper.KERNEL_ENV_VAR, "mosaic")
  for interpret, capability in ((True, None), (False, AMPERE)):  # no device check when forced
    assert wrapper.choose_kernel(args, layout(), interpret=interpret, capability=capability,
                                 choice=wrapper.kernel_choice())[0] == "mosaic"
  with pytest.raises(ValueError, match="JSPARSE_ATTENTION_KERNEL=mosaic, but .* head dim"):
    wrapper.choose_kernel(avals(head_dim=32), layout(), interpret=False, capability=HOPPER,
                          choice=wrapper.kernel_choice())
  monkeypatch.setenv(wrapper.KERNEL_ENV_VAR, "")
  assert wrapper.kernel_choice() == "auto"
  monkeypatch.setenv(wrapper.KERNEL_ENV_VAR, "cudnn")
  with pytest.raises(ValueError, match="JSPARSE_ATTENTION_KERNEL must be one of"):
    wrapper.kernel_choice()


def test_cuda_capability_is_none_without_a_cuda_device():
  if jax.default_backend() != "gpu":
    assert wrapper.cuda_capability() is None
  else:
    capability = wrapper.cuda_capability()
    assert capability is None or capability >= (7, 0)


@pytest.mark.parametrize("capability, expected, absent", [
    (HOPPER, "mosaic_gpu", "triton"), (AMPERE, "triton", "mosaic_gpu")])
def test_public_op_lowers_to_the_chosen_kernel_without_a_gpu(monkeypatch, capability, expected,
                                                              absent):
  """The registered lowering of ``jsparse.block_sparse_attention`` for CUDA (lowered on any
  host; no PTX is generated) calls the kernel ``choose_kernel`` picks for the device."""
  dispatch_cases.pretend_cuda_device(monkeypatch, wrapper, capability, wrapper.KERNEL_ENV_VAR)
  q, k, v = avals(head_dim=64)[:3]
  mask = jsparse.BlockMask.from_dense(np.random.default_rng(0).random((8, 8, 8)) < 0.5,
                                      block_size=(128, 128))
  attend = jax.jit(lambda q, k, v: jsparse.block_sparse_attention(q, k, v, mask, causal=True,
                                                                  impl="pallas"))
  text = attend.trace(q, k, v).lower(lowering_platforms=("cuda",)).as_text()
  assert expected in text and absent not in text


def test_wrapper_runs_the_mosaic_kernel_in_interpret_mode(monkeypatch):
  """``JSPARSE_ATTENTION_KERNEL=mosaic`` with interpret mode (compiled on a Hopper GPU): the
  wrapper passes the layout's block size, causal flag and scale to the Mosaic GPU kernel (its
  interpreter on the CPU, 2-5 s)."""
  interpret = jax.default_backend() != "gpu"
  if not interpret and wrapper.cuda_capability() != HOPPER:
    pytest.skip(f"the Mosaic GPU kernel needs sm_90, this GPU is {wrapper.cuda_capability()}")
  monkeypatch.setenv(wrapper.KERNEL_ENV_VAR, "mosaic")
  rng = np.random.default_rng()
  q = jnp.asarray(rng.standard_normal((1, 128, 2, 64)), jnp.float16)
  k, v = (jnp.asarray(rng.standard_normal((1, 256, 1, 64)), jnp.float16) for _ in range(2))
  mask = jsparse.BlockMask.from_dense(np.array([[[True, True]], [[False, True]]]),
                                      block_size=(128, 128))
  attention_layout = AttentionLayout(block_size=(128, 128), causal=True, scale=0.3)
  out = wrapper._attention(q, k, v, mask.kv_block_indices, mask.kv_block_counts,
                           interpret=interpret, layout=attention_layout)
  expected = jsparse.block_sparse_attention(q, k, v, mask, causal=True, scale=0.3,
                                            impl="reference")
  np.testing.assert_allclose(np.asarray(out, np.float64), np.asarray(expected, np.float64),
                             atol=4e-3, rtol=4e-3)


@pytest.mark.gpu
@pytest.mark.parametrize("head_dim, causal, density", [(64, False, 0.3), (128, True, 0.6)])
def test_public_op_on_hopper_runs_mosaic_and_matches_reference(head_dim, causal, density):
  """Compiled (Hopper GPU only): ``impl="pallas"`` lowers to the Mosaic GPU kernel and agrees
  with ``impl="reference"``; GQA, per-head random masks."""
  if wrapper.cuda_capability() != HOPPER:
    pytest.skip(f"the Mosaic GPU kernel needs sm_90, this GPU is {wrapper.cuda_capability()}")
  rng = np.random.default_rng()
  q = jnp.asarray(rng.standard_normal((2, 1024, 8, head_dim)), jnp.bfloat16)
  k, v = (jnp.asarray(rng.standard_normal((2, 1024, 2, head_dim)), jnp.bfloat16)
          for _ in range(2))
  mask = jsparse.BlockMask.from_dense(rng.random((8, 8, 8)) < density, block_size=(128, 128))
  kernel, why = wrapper.choose_kernel((q, k, v, mask.kv_block_indices, mask.kv_block_counts),
                                      layout(causal=causal), interpret=False,
                                      capability=HOPPER, choice=wrapper.kernel_choice())
  if kernel != "mosaic":
    pytest.skip(f"the dispatch picks Triton here: {why}")

  def attend(impl):
    return jax.jit(lambda q, k, v, mask: jsparse.block_sparse_attention(
        q, k, v, mask, causal=causal, impl=impl))

  assert "mosaic_gpu" in attend("pallas").lower(q, k, v, mask).as_text()
  out = np.asarray(attend("pallas")(q, k, v, mask), np.float64)
  expected = np.asarray(attend("reference")(q, k, v, mask), np.float64)
  assert np.isfinite(out).all()
  np.testing.assert_allclose(out, expected, atol=3e-2, rtol=3e-2)
