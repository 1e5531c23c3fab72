"""Test-session settings: 64-bit JAX (so float64 and int64 indices are covered) and hypothesis.

Profiles: ``dev`` (default, quick) and ``thorough``; pick one with the environment variable
``JSPARSE_HYPOTHESIS_PROFILE``.
"""

import os

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

settings.register_profile("dev", max_examples=25, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("JSPARSE_HYPOTHESIS_PROFILE", "dev"))
