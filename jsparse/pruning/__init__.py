"""Pruning: masks of weight matrices (magnitude, global, random, N:M, block), a gradual schedule,
and functions that sparsify the linear layers of a Flax NNX model (``jsparse.pruning.modules``,
which imports flax; the mask functions do not)."""

from jsparse.pruning.masks import (block_mask, global_magnitude_masks, magnitude_mask, nm_mask,
                                   num_pruned, random_mask)
from jsparse.pruning.patterns import sparse_from_mask
from jsparse.pruning.schedule import cubic_sparsity

__all__ = ["block_mask", "cubic_sparsity", "global_magnitude_masks", "magnitude_mask", "nm_mask",
           "num_pruned", "random_mask", "sparse_from_mask"]
