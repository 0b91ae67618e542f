"""Compression of what crosses a stage boundary, and its exact wire size.

A payload is a name -> tensor mapping (safetensors-able, hashed as sent).
Methods, chosen by the job spec's `CompressionConfig`:

- `none`: {"x": float32}.
- `int8`: per-row absmax quantisation over the last axis:
  {"q": int8, "scale": float32 (..., 1)}; 4x smaller, error <= scale / 2.
- `topk`: error-feedback top-k sparsification: the sender adds the residual
  it did not send last time, sends the `ratio` largest-magnitude entries as
  {"values": float32 [k], "indices": int32 [k] (ascending), "shape": int64},
  and keeps the rest as the new residual. The residual is part of the stage
  state (it is hashed into params_before/params_after), so a replay starts
  from the same residual. Reaches 4 / (8 * ratio) : 1, e.g. 50x at ratio 0.01.

The backward pass treats compression as the identity (straight-through): the
gradient a stage receives for its output is applied to the dense output.
"""

from __future__ import annotations

import math

import torch

from agents.spec import CompressionConfig
from agents.training.errors import CompressionError

Payload = dict[str, torch.Tensor]

_KEYS = {"none": {"x"}, "int8": {"q", "scale"}, "topk": {"values", "indices", "shape"}}


def uses_residual(cfg: CompressionConfig) -> bool:
    """Whether the method keeps error-feedback state on the sending side."""
    return cfg.method == "topk"


def encode(
    cfg: CompressionConfig, x: torch.Tensor, residual: torch.Tensor | None = None
) -> tuple[Payload, torch.Tensor | None]:
    """Compress `x` for the wire; returns (payload, new residual or None)."""
    x = x.detach().to(torch.float32)
    if cfg.method == "none":
        return {"x": x.contiguous().clone()}, None
    if cfg.method == "int8":
        absmax = x.abs().amax(dim=-1, keepdim=True)
        scale = absmax / 127.0
        # All-zero rows would divide by zero; any scale decodes them to zero.
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(x / safe).clamp_(-127, 127).to(torch.int8)
        return {"q": q.contiguous(), "scale": scale.contiguous()}, None
    if cfg.method == "topk":
        v = x if residual is None else x + residual.to(x.device)
        flat = v.reshape(-1)
        k = max(1, math.ceil(cfg.ratio * flat.numel()))
        idx = torch.topk(flat.abs(), k, sorted=False).indices
        idx, _ = torch.sort(idx)
        values = flat[idx].contiguous()
        new_residual = flat.clone()
        new_residual[idx] = 0.0
        payload = {
            "values": values,
            "indices": idx.to(torch.int32),
            "shape": torch.tensor(list(v.shape), dtype=torch.int64),
        }
        return payload, new_residual.view_as(v)
    raise CompressionError(f"unknown compression method {cfg.method!r}")


def decode(
    cfg: CompressionConfig, payload: Payload, expected_shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """Decompress a received payload to a dense float32 tensor, validating it."""
    keys = set(payload)
    if keys != _KEYS.get(cfg.method, set()):
        raise CompressionError(
            f"payload keys {sorted(keys)} do not match compression {cfg.method!r}"
        )
    if cfg.method == "none":
        out = payload["x"]
        if out.dtype != torch.float32:
            raise CompressionError(f"payload 'x' has dtype {out.dtype}, expected float32")
    elif cfg.method == "int8":
        q, scale = payload["q"], payload["scale"]
        if q.dtype != torch.int8 or scale.dtype != torch.float32:
            raise CompressionError("int8 payload has wrong dtypes")
        if scale.shape != (*q.shape[:-1], 1):
            raise CompressionError(f"int8 scale shape {tuple(scale.shape)} does not fit {q.shape}")
        out = q.to(torch.float32) * scale
    else:
        values, indices, shape = payload["values"], payload["indices"], payload["shape"]
        if shape.dtype != torch.int64 or shape.dim() != 1 or (shape < 0).any():
            raise CompressionError("topk payload has a malformed shape")
        dims = tuple(int(n) for n in shape.tolist())
        numel = math.prod(dims)
        if expected_shape is not None and dims != tuple(expected_shape):
            raise CompressionError(f"topk payload shape {dims}, expected {tuple(expected_shape)}")
        if (
            values.dtype != torch.float32
            or indices.dtype != torch.int32
            or values.shape != indices.shape
            or values.dim() != 1
        ):
            raise CompressionError("topk payload values/indices do not match")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= numel):
            raise CompressionError("topk payload index out of range")
        flat = torch.zeros(numel, dtype=torch.float32)
        flat[indices.to(torch.int64)] = values
        out = flat.view(dims)
    if expected_shape is not None and tuple(out.shape) != tuple(expected_shape):
        raise CompressionError(
            f"payload decodes to shape {tuple(out.shape)}, expected {tuple(expected_shape)}"
        )
    return out


def dense_nbytes(shape: tuple[int, ...]) -> int:
    """Bytes of the same tensor sent uncompressed as float32."""
    return 4 * math.prod(shape)
