"""Pallas GPU kernels (Triton backend) over plain arrays.

Each module exports ``kernel_fn(..., config, interpret=False)``, a frozen config dataclass of
block sizes and launch parameters, and ``reference_fn(...)`` in plain ``jax.numpy`` computing the
same function. Kernels know arrays and configs only, never jsparse's types, registry or layers;
``jsparse/_gpu`` wraps and registers them. ``interpret=True`` runs a kernel on any platform
(the CPU tests use it).
"""
