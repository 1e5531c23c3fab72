"""experiments/gpu_checks/tiled_probe.py: every named launch change applies to the launches the
decoding and prefill rules pick (a change that builds an invalid config would fail only on the
GPU, mid-run)."""

import pytest

from experiments.gpu_checks import tiled_probe
from jsparse._gpu import structured
from jsparse.formats.layout import SparseLayout
from pallas_kernels import tiled_spmm


def _layout(shape, tile_shape=(16, 64)):
  return SparseLayout("tiled", shape, block_shape=tile_shape)


@pytest.mark.parametrize("shape,n", [((4096, 14336), 16), ((14336, 4096), 16),
                                     ((4096, 14336), 1), ((4096, 4096), 1024)],
                         ids=["wide", "tall", "wide-n1", "prefill"])
@pytest.mark.parametrize("name", sorted(tiled_probe.CHANGES))
def test_every_change_builds_a_config(shape, n, name):
  config = tiled_probe.CHANGES[name](structured.tiled_config(_layout(shape), n))
  assert isinstance(config, tiled_spmm.TiledSpmmConfig)


@pytest.mark.parametrize("plan", sorted(tiled_probe.PLANS))
def test_every_plan_names_known_launches(plan):
  for _, _, tile_shape, _, names in tiled_probe.plan(False, plan):
    assert tile_shape[1] % 32 == 0
    for name in names:
      assert name in tiled_probe.CHANGES or name in tiled_probe.GATHER, name
