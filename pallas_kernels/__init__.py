"""Pallas GPU kernels over plain arrays: Triton backend, plus Mosaic GPU for Hopper.

Each module exports ``kernel_fn(..., config, interpret=False)``, a frozen config dataclass of
block sizes and launch parameters, and ``reference_fn(...)`` in plain ``jax.numpy`` computing the
same function. Kernels know arrays and configs only, never jsparse's types, registry or layers;
``jsparse/_gpu`` wraps and registers them. Most kernels use Pallas's Triton backend (any sm_80+
GPU); ``block_sparse_attention_mgpu`` uses its Mosaic GPU backend (Hopper, sm_90: TMA, wgmma,
warp specialization) and ``jsparse/_gpu/attention.py`` picks it over the Triton
``block_sparse_attention`` where it applies. ``interpret=True`` runs a kernel on any platform
(the CPU tests use it).
"""
