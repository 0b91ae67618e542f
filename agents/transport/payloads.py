"""Boundary payloads (name -> tensor) to bytes and back, with safetensors: never pickle."""

from __future__ import annotations

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from agents.transport.frames import FrameError

# uint8: the subspace codec's packed codes and token bytes.
_DTYPES = {
    torch.float32,
    torch.int8,
    torch.uint8,
    torch.int64,
    torch.int32,
    torch.float16,
    torch.bfloat16,
}


def payload_to_bytes(payload: dict[str, torch.Tensor]) -> bytes:
    """Serialize a payload for the wire."""
    return st_save({k: v.contiguous() for k, v in payload.items()})


def payload_from_bytes(data: bytes, *, allowed_keys: set[str] | None = None) -> dict:
    """Parse wire bytes into tensors; anything but plain tensors of known dtypes is refused."""
    try:
        out = st_load(data)
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise FrameError(f"payload is not a safetensors blob: {str(exc)[:80]}") from None
    for name, t in out.items():
        if t.dtype not in _DTYPES:
            raise FrameError(f"payload tensor {name} has dtype {t.dtype}")
    if allowed_keys is not None and set(out) != allowed_keys:
        raise FrameError(f"payload keys {sorted(out)} are not {sorted(allowed_keys)}")
    return out
