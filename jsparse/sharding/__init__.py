"""Sparse matrices, ops and layers split across the devices of a ``jax.sharding.Mesh``."""

from jsparse.sharding.layers import (attention, linear, mlp, shard_linear, shard_mlp,
                                     shard_mlp_layers)
from jsparse.sharding.ops import sddmm, spmm, spmv
from jsparse.sharding.sharded import ShardedSparse, shard, unshard

__all__ = ["ShardedSparse", "attention", "linear", "mlp", "sddmm", "shard", "shard_linear",
           "shard_mlp", "shard_mlp_layers", "spmm", "spmv", "unshard"]
