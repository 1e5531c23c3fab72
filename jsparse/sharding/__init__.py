"""Sparse matrices and ops split across the devices of a ``jax.sharding.Mesh``."""

from jsparse.sharding.ops import sddmm, spmm, spmv
from jsparse.sharding.sharded import ShardedSparse, shard, unshard

__all__ = ["ShardedSparse", "sddmm", "shard", "spmm", "spmv", "unshard"]
