"""Test-session settings: 8 host CPU devices, 64-bit JAX (so float64 and int64 indices are
covered) and hypothesis.

Profiles: ``dev`` (default, quick) and ``thorough``; pick one with the environment variable
``JSPARSE_HYPOTHESIS_PROFILE``.
"""

import importlib.util
import os
import pathlib
import sys

# `python -P -m pytest` (the README's and CI's command) leaves the repository root off sys.path;
# the tests of experiments/ import it as a package, whichever test file runs first.
if importlib.util.find_spec("experiments") is None:
  sys.path.append(str(pathlib.Path(__file__).resolve().parents[1]))

# Eight host CPU devices for the sharding tests (meshes of 1-8 devices). XLA reads the flag when
# JAX starts its CPU backend, so it is set before jax is imported; it changes nothing on a GPU.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                             + " --xla_force_host_platform_device_count=8").strip()

import jax  # noqa: E402  (after XLA_FLAGS)
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

# Drawing a case builds JAX arrays, which compiles on first use: on a loaded 2-core machine that
# trips hypothesis's "input generation is slow" check, which says nothing about correctness.
_RELAXED = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, **_RELAXED)
settings.register_profile("thorough", max_examples=300, **_RELAXED)
settings.load_profile(os.environ.get("JSPARSE_HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
  """Skips, visibly (``-ra`` lists them), slow tests unless asked for and GPU tests without one."""
  import pytest

  run_slow = os.environ.get("JSPARSE_RUN_SLOW", "") not in ("", "0")
  has_gpu = any(device.platform == "gpu" for device in jax.devices()) if any(
      item.get_closest_marker("gpu") for item in items) else False
  for item in items:
    if item.get_closest_marker("slow") and not run_slow:
      item.add_marker(pytest.mark.skip(reason="slow: set JSPARSE_RUN_SLOW=1 to run"))
    if item.get_closest_marker("gpu") and not has_gpu:
      item.add_marker(pytest.mark.skip(reason="gpu: needs a CUDA GPU visible to JAX"))
