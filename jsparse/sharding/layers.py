"""Tensor-parallel sparse layers as functions over sharded weights.

- ``linear``: one sparse linear layer, ``x @ W.T + b``, with W [out, in] split by rows (output
  features, "column parallel" in Megatron's words) or by columns (input features, "row
  parallel", partial products summed with a ``psum``).
- ``shard_mlp`` + ``mlp``: the Megatron MLP, ``down(act(gate(x)) * up(x))`` (or ``down(act(up(x)))``):
  up and gate split by output features, down by input features at the *same* cuts, so the hidden
  activations never leave their device and the block costs one ``psum`` of [T, out].
- ``attention``: ``jsparse.block_sparse_attention`` with the heads split across a mesh axis.

Weights are jsparse matrices laid out [out features, in features] (rows are outputs), so a layer
computes ``(W @ x.T).T`` with one SpMM per device, as ``jsparse.nn.SparseLinear`` does;
``shard_linear`` and ``shard_mlp_layers`` take such layers.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, PartitionSpec as P

from jsparse import ops
from jsparse.formats import SparseMatrix
from jsparse.formats.block_mask import BlockMask
from jsparse.ops import _primitive
from jsparse.ops.attention import block_sparse_attention
from jsparse.sharding import ops as sharded_ops, partition
from jsparse.sharding.sharded import AxisName, ShardedSparse, axis_size, place, shard


def linear(x: Any, weight: ShardedSparse, bias: Any = None, *, impl: str = "auto") -> jax.Array:
  """A sparse linear layer ``x @ W.T + b`` with a sharded weight.

  Args:
    x: dense [T, in] activations (replicated).
    weight: sharded sparse [out, in] (any split, see ``jsparse.shard``).
    bias: optional dense [out].
    impl: the per-device backend.

  Returns:
    dense [T, out], replicated.
  """
  x = _primitive.check_dense("x", x, 2, "[T, in]")
  out = sharded_ops.spmm(weight, x.T, impl=impl).T
  if bias is not None:
    bias = _primitive.check_dense("bias", bias, 1, "[out]")
    _primitive.check_length("bias", bias.shape[0], weight.shape[0], "it must equal weight.shape[0]")
    out = out + bias.astype(out.dtype)
  return out


def shard_mlp(up: SparseMatrix, down: SparseMatrix, mesh: Mesh, axis: AxisName = "x", *,
              gate: SparseMatrix | None = None) -> dict[str, ShardedSparse]:
  """Splits an MLP's weights in the Megatron layout over the mesh axis ``axis``.

  The hidden features are cut once, balancing the stored values of up's and gate's rows and of
  down's columns together; up and gate are split by rows and down by columns at those cuts.

  Args:
    up: sparse [hidden, in]; gate: optional sparse [hidden, in]; down: sparse [out, hidden].
    mesh: the mesh; axis: the mesh axis (or tuple of axes) that splits the hidden features.

  Returns:
    ``{"up": ..., "down": ..., "gate": ...}`` (gate only when given), for ``mlp``.
  """
  hidden = up.shape[0]
  for name, matrix, dim in (("gate", gate, 0), ("down", down, 1)):
    if matrix is not None and matrix.shape[dim] != hidden:
      raise ValueError(f"{name}.shape[{dim}] must equal up.shape[0] = {hidden} (the hidden "
                       f"features), got {matrix.shape[dim]}")
  if gate is not None and gate.shape != up.shape:
    raise ValueError(f"gate must have up's shape {up.shape}, got {gate.shape}")
  uses = [(up, 0), (down, 1)] + ([(gate, 0)] if gate is not None else [])
  for matrix, _ in uses:
    partition.check_concrete("up, gate and down", matrix)
  cuts = _joint_cuts(uses, axis_size(mesh, axis))
  weights = {"up": shard(up, mesh, P(axis, None), row_cuts=cuts),
             "down": shard(down, mesh, P(None, axis), col_cuts=cuts)}
  if gate is not None:
    weights["gate"] = shard(gate, mesh, P(axis, None), row_cuts=cuts)
  return weights


def _joint_cuts(uses: list[tuple[SparseMatrix, int]], parts: int) -> tuple[int, ...]:
  """Cuts of one shared axis balancing the stored values of several matrices along it; they fall
  on multiples of every matrix's block or group size along that axis."""
  per_feature, units = 0.0, []
  for matrix, dim in uses:
    weights, unit = partition.unit_weights(matrix, dim)
    per_feature = per_feature + np.repeat(weights / unit, unit)
    units.append(unit)
  unit = math.lcm(*units)
  chunks = per_feature.reshape(-1, unit).sum(axis=1)
  return tuple(unit * c for c in partition.balanced_cuts(chunks, parts))


def mlp(x: Any, weights: dict[str, ShardedSparse], *, activation: Callable = jax.nn.silu,
        up_bias: Any = None, down_bias: Any = None, impl: str = "auto") -> jax.Array:
  """The tensor-parallel sparse MLP ``down(act(gate(x)) * up(x))`` (``down(act(up(x)))``
  without gate), one ``shard_map`` and one ``psum``.

  Args:
    x: dense [T, in] (replicated).
    weights: from ``shard_mlp``.
    activation: elementwise function (SiLU by default, as in Llama).
    up_bias: optional dense [hidden]; down_bias: optional dense [out].
    impl: the per-device backend.

  Returns:
    dense [T, out], replicated.
  """
  x = _primitive.check_dense("x", x, 2, "[T, in]")
  up, down, gate = weights["up"], weights["down"], weights.get("gate")
  _primitive.check_length("x.shape[1]", x.shape[1], up.shape[1], "it must equal up.shape[1]")
  if up.row_cuts != down.col_cuts or up.row_axis != down.col_axis:
    raise ValueError("weights['down'] must be split by columns at up's row cuts over the same "
                     "mesh axis; build the weights with shard_mlp")
  axis = up.row_axis
  hidden_rows = up.piece_shape[0]
  up_bias = jnp.zeros((up.shape[0],), x.dtype) if up_bias is None else up_bias

  def body(up_pieces, gate_pieces, down_pieces, x, up_bias):
    columns = x.T
    bias = sharded_ops.local_rows(up_bias, up.row_cuts, hidden_rows, axis)[:, None]
    hidden = ops.spmm(partition.piece(up_pieces, 0, 0), columns, impl=impl) + bias
    if isinstance(gate_pieces, tuple):  # no gate
      hidden = activation(hidden)
    else:
      hidden = activation(ops.spmm(partition.piece(gate_pieces, 0, 0), columns, impl=impl)) * hidden
    # Padded hidden rows meet padded columns of down, which store nothing.
    hidden = jnp.pad(hidden, [(0, down.piece_shape[1] - hidden_rows), (0, 0)])
    out = ops.spmm(partition.piece(down_pieces, 0, 0), hidden, impl=impl)
    if axis is not None:
      out = jax.lax.psum(out, axis)
    return out.T

  gate_pieces = () if gate is None else gate.pieces
  out = jax.shard_map(body, mesh=up.mesh,
                      in_specs=(up.spec, P() if gate is None else gate.spec, down.spec, P(), P()),
                      out_specs=P(), check_vma=False)(up.pieces, gate_pieces, down.pieces,
                                                      *place((x, up_bias), up.mesh, P()))
  return out if down_bias is None else out + jnp.asarray(down_bias).astype(out.dtype)


def layer_weight(layer: Any) -> tuple[SparseMatrix, jax.Array | None]:
  """(weight [out, in], bias [out] or None) of a ``jsparse.nn.SparseLinear`` (read through its
  attributes, so that this module does not import flax)."""
  if not hasattr(layer, "weight") or not hasattr(layer.weight, "matrix"):
    raise TypeError(f"layer must be a jsparse.nn.SparseLinear, got {type(layer).__name__}")
  bias = None if layer.bias is None else jnp.asarray(layer.bias[...])
  return layer.weight.matrix, bias


def shard_linear(layer: Any, mesh: Mesh, spec: Any = P("x")) -> dict[str, Any]:
  """A ``jsparse.nn.SparseLinear``'s weight split over ``mesh`` as ``spec`` (see
  ``jsparse.shard``) and its bias: ``linear(x, **shard_linear(layer, mesh))`` equals
  ``layer(x)`` for x [T, in]."""
  weight, bias = layer_weight(layer)
  return {"weight": shard(weight, mesh, spec), "bias": bias}


def shard_mlp_layers(up: Any, down: Any, mesh: Mesh, axis: AxisName = "x", *,
                     gate: Any = None) -> dict[str, Any]:
  """``shard_mlp`` over ``jsparse.nn.SparseLinear`` layers: the keyword arguments of ``mlp``
  besides x and activation (weights and biases). The gate layer must have no bias."""
  (up_weight, up_bias), (down_weight, down_bias) = layer_weight(up), layer_weight(down)
  gate_weight = None
  if gate is not None:
    gate_weight, gate_bias = layer_weight(gate)
    if gate_bias is not None:
      raise NotImplementedError("gate has a bias; mlp supports biases on up and down only "
                                "(Llama's MLP has none)")
  return {"weights": shard_mlp(up_weight, down_weight, mesh, axis, gate=gate_weight),
          "up_bias": up_bias, "down_bias": down_bias}


def attention(q: Any, k: Any, v: Any, mask: BlockMask, mesh: Mesh, axis: AxisName = "x",
              **kwargs: Any) -> jax.Array:
  """``jsparse.block_sparse_attention`` with the heads split over the mesh axis ``axis``.

  Args:
    q: [B, Sq, Hq, D], Hq a multiple of the axis size; k, v: [B, Sk, Hkv, D], Hkv a multiple
      or a divisor of the axis size (a divisor: key/value heads are copied so that each device
      holds the one its query heads read).
    mask: ``BlockMask`` with 1 head (replicated) or Hq heads (split with the queries).
    mesh, axis: the mesh and the axis (or tuple of axes) that splits the heads.
    kwargs: ``causal``, ``scale``, ``impl``, as in ``jsparse.block_sparse_attention``.

  Returns:
    [B, Sq, Hq, D], heads split over ``axis``.
  """
  parts = axis_size(mesh, axis)
  q, k, v = (_primitive.check_dense(name, a, 4, "[B, S, H, D]")
             for name, a in (("q", q), ("k", k), ("v", v)))
  if q.shape[2] % parts:
    raise ValueError(f"q.shape[2] = {q.shape[2]} heads must be a multiple of the {parts} devices "
                     f"of axis {axis!r}")
  if k.shape[2] % parts and parts % k.shape[2] == 0 and k.shape == v.shape:
    # Fewer key/value heads than devices (grouped-query attention): each device needs one, so
    # every key/value head is copied to the devices of its query heads.
    k, v = (jnp.repeat(a, parts // a.shape[2], axis=2) for a in (k, v))
  if k.shape[2] % parts:
    raise ValueError(f"k.shape[2] = {k.shape[2]} key/value heads must be a multiple or a divisor "
                     f"of the {parts} devices of axis {axis!r}")
  heads = P(None, None, axis, None)
  mask_spec = P(None) if mask.num_heads == 1 else P(axis)
  return jax.shard_map(
      lambda q, k, v, mask: block_sparse_attention(q, k, v, mask, **kwargs), mesh=mesh,
      in_specs=(heads, heads, heads, mask_spec), out_specs=heads, check_vma=False)(
          *place((q, k, v), mesh, heads), place(mask, mesh, mask_spec))
