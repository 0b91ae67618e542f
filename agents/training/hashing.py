"""Canonical tensor hashes: sha256 over (dtype, shape, little-endian bytes).

What crosses a stage boundary is hashed as sent (the compressed payload, a
name -> tensor mapping), so stage s's output hash is stage s+1's input hash.
The encoding is fixed here and nowhere else:

    tensor  = dtype name (utf-8, length-prefixed) | ndim (u32) | shape (u64 each) | raw bytes
    mapping = domain tag | count (u32) | for each name in sorted order:
              name (utf-8, length-prefixed) | tensor
"""

from __future__ import annotations

import functools
import hashlib
import struct
import sys
from collections.abc import Mapping

import torch

ZERO_HASH = "0x" + "00" * 32

# The raw bytes are the in-memory bytes; every platform torch ships for is
# little-endian, and a big-endian host would silently produce other hashes.
if sys.byteorder != "little":  # pragma: no cover - no such build machine exists
    raise ImportError("tensor hashes need a little-endian host")


@functools.cache
def _dtype_tag(dtype: torch.dtype) -> bytes:
    """A dtype's part of a tensor's header: its name's length (u32) and the name."""
    name = str(dtype).removeprefix("torch.").encode()
    return struct.pack("<I", len(name)) + name


def _update_tensor(h: hashlib._Hash, t: torch.Tensor) -> None:
    # Payloads are small and hashed several times a micro-batch: only the
    # conversions a tensor needs, and its header in one update.
    if t.requires_grad:
        t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if not t.is_contiguous():
        t = t.contiguous()
    # dtype | ndim (u32) | shape (u64 each): struct's "<" packs with no padding.
    h.update(_dtype_tag(t.dtype) + struct.pack(f"<I{t.dim()}Q", t.dim(), *t.shape))
    # uint8 view works for every dtype (bfloat16 included), unlike .numpy();
    # hashlib reads the array's buffer in place (no copy) and drops the GIL.
    h.update(t.reshape(-1).view(torch.uint8).numpy())


def tensor_hash(t: torch.Tensor) -> str:
    """sha256 of one tensor's canonical encoding, as 0x-prefixed hex."""
    h = hashlib.sha256(b"tessera/tensor@1")
    _update_tensor(h, t)
    return "0x" + h.hexdigest()


def tensors_hash(tensors: Mapping[str, torch.Tensor], domain: str = "payload") -> str:
    """sha256 of a name -> tensor mapping (names sorted), tagged with `domain`."""
    h = hashlib.sha256(f"tessera/{domain}@1".encode())
    h.update(struct.pack("<I", len(tensors)))
    for name in sorted(tensors):
        encoded = name.encode()
        h.update(struct.pack("<I", len(encoded)) + encoded)
        _update_tensor(h, tensors[name])
    return "0x" + h.hexdigest()


def payload_nbytes(tensors: Mapping[str, torch.Tensor]) -> int:
    """Bytes a payload puts on the wire: the tensors' data, metadata not counted."""
    return sum(t.numel() * t.element_size() for t in tensors.values())
