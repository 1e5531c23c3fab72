"""jsparse: sparse arrays and sparse kernels for deep-learning inference in JAX."""

from jsparse import io
from jsparse.formats import BSR, COO, CSR, NM, CompressedNM, MmaNM, SparseMatrix, Tiled
from jsparse.formats.block_mask import BlockMask
from jsparse.ops import sddmm, spmm, spmv
from jsparse.ops.attention import block_sparse_attention
from jsparse import sharding
from jsparse.sharding import ShardedSparse, shard, unshard
from jsparse import _cpu  # registers the C++ CPU kernels (when built) with the op registry
from jsparse import _gpu  # registers the Pallas GPU kernels with the op registry
from jsparse._gpu import cusparselt  # 2:4 on the sparse tensor cores (GPU only; built on use)

__version__ = "0.1.0"

__all__ = ["BSR", "BlockMask", "COO", "CompressedNM", "CSR", "MmaNM", "NM", "SparseMatrix",
           "block_sparse_attention", "cusparselt", "io", "sddmm", "shard", "ShardedSparse",
           "sharding", "spmm", "spmv", "Tiled", "unshard"]
