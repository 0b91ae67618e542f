"""Stage state <-> safetensors bytes (never pickle).

A stage's state is everything that determines its next step: parameters, the
AdamW moments and step counts (the boundary codec keeps no state).
It is a flat name -> tensor mapping with these prefixes:

    param/<name>              the stage's parameters (GPT's names)
    optim/<name>/exp_avg      AdamW first moment
    optim/<name>/exp_avg_sq   AdamW second moment
    optim/<name>/step         AdamW step count (float32 scalar, as torch keeps it)

The file's metadata names the format, the stage and the content hash; loading
recomputes the hash, so a flipped bit is an error rather than silent data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load

from agents.training.errors import CheckpointError
from agents.training.hashing import tensors_hash

FORMAT = "tessera/stage-state@1"

_DTYPES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
}


def canonical_safetensors(
    tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    """safetensors bytes with one canonical layout: the same tensors always give the same bytes.

    The safetensors library writes its metadata from a hash map whose order
    changes from process to process, so the same state would get a different
    CID on every provider. Here the header is JSON with sorted keys, the
    tensors are laid out in name order, and the header is space-padded to
    8 bytes, as the format requires; the library reads it back unchanged.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPES:
            raise CheckpointError(f"tensor {name} has unsupported dtype {t.dtype}")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


@dataclass(frozen=True)
class StageState:
    """A stage's full state: tensors plus who it belongs to."""

    tensors: Mapping[str, torch.Tensor]
    stage: int
    num_stages: int
    extra: Mapping[str, str] = field(default_factory=dict)
    # Set by `state_from_bytes` once it has checked the tensors against it.
    content_hash: str | None = field(default=None, compare=False)

    def params(self) -> dict[str, torch.Tensor]:
        """The parameters alone, under GPT's names."""
        return {k[6:]: v for k, v in self.tensors.items() if k.startswith("param/")}


class FlatTensors(Mapping[str, torch.Tensor]):
    """A read-only name -> tensor mapping held as one contiguous CPU buffer per dtype.

    What a per-step audit snapshot is: taking it is one copy kernel per dtype
    (a stage state has dozens of small tensors, and per-tensor dispatch and
    page faults dominated copying them one by one every step); the named views
    are built only when the snapshot is read (a bundle for a sampled step).
    """

    def __init__(
        self,
        tensors: Mapping[str, torch.Tensor],
        *,
        reuse: FlatTensors | None = None,
        spill: SpillDir | None = None,
    ) -> None:
        self._names = list(tensors)
        self._groups: list[tuple[list[str], list[torch.Size], torch.Tensor]] = []
        by_dtype: dict[torch.dtype, list[str]] = {}
        for name, t in tensors.items():
            by_dtype.setdefault(t.dtype, []).append(name)
        old = reuse._buffers_for(self._names, tensors) if reuse is not None else None
        with torch.no_grad():
            for i, names in enumerate(by_dtype.values()):
                parts = [tensors[n] for n in names]
                if old is None and spill is None:
                    flat = _flatten(parts)
                else:  # into a buffer given: a pooled one (same layout) or a file-backed one
                    flat = (
                        old[i]
                        if old is not None
                        else spill.empty(sum(t.numel() for t in parts), parts[0].dtype)
                    )
                    _fill(flat, parts)
                self._groups.append((names, [t.shape for t in parts], flat))
        self._views: dict[str, torch.Tensor] | None = None

    def _buffers_for(
        self, names: list[str], tensors: Mapping[str, torch.Tensor]
    ) -> list[torch.Tensor] | None:
        """This snapshot's buffers, if `tensors` has exactly its layout (else None)."""
        if names != self._names:
            return None
        for group_names, shapes, flat in self._groups:
            for n, shape in zip(group_names, shapes, strict=True):
                t = tensors[n]
                if t.shape != shape or t.dtype != flat.dtype or t.device.type != "cpu":
                    return None
        return [flat for _, _, flat in self._groups]

    @property
    def was_read(self) -> bool:
        """Whether any tensor of it was ever handed out (then its buffers may be shared)."""
        return self._views is not None

    def _materialise(self) -> dict[str, torch.Tensor]:
        if self._views is None:
            views: dict[str, torch.Tensor] = {}
            for names, shapes, flat in self._groups:
                pieces = flat.split([s.numel() for s in shapes])
                for name, shape, piece in zip(names, shapes, pieces, strict=True):
                    views[name] = piece.view(shape)
            self._views = {n: views[n] for n in self._names}
        return self._views

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._materialise()[name]

    def __iter__(self):
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def _flatten(parts: list[torch.Tensor]) -> torch.Tensor:
    """One new CPU buffer holding `parts` back to back (one C++ call)."""
    from torch._utils import _flatten_dense_tensors

    return _flatten_dense_tensors(parts).to("cpu")  # a new buffer either way


def _fill(flat: torch.Tensor, parts: list[torch.Tensor]) -> None:
    """Write `parts` back to back into the CPU buffer `flat` (one C++ call from CPU)."""
    if all(t.device.type == "cpu" for t in parts):
        torch.cat([t.detach().reshape(-1) for t in parts], out=flat)
    else:  # a device state: one flat copy on the device, then one transfer
        flat.copy_(_flatten(parts))


def flat_copy(
    tensors: Mapping[str, torch.Tensor],
    *,
    reuse: FlatTensors | None = None,
    spill: SpillDir | None = None,
) -> FlatTensors:
    """A CPU copy of `tensors`, one contiguous buffer per dtype (see FlatTensors).

    `reuse`: a snapshot nobody will read again, whose buffers this copy takes
    over when the layout matches (fresh pages cost more than the copy itself).
    `spill`: new buffers are file-backed pages there instead of anonymous RAM."""
    return FlatTensors(tensors, reuse=reuse, spill=spill)


class SpillDir:
    """A directory whose files back snapshot buffers instead of anonymous memory.

    A round keeps one snapshot of the stage state per step until it is audited,
    which at thousands of steps a round is more than RAM. Each buffer here is a
    file, reserved in full up front (`posix_fallocate`: a full disk is a
    CheckpointError now, never a SIGBUS on a later write), mapped shared and
    unlinked as soon as it is mapped (no descriptor stays open): the kernel
    writes its pages back and evicts them under memory pressure, reads them in
    again when a bundle needs them, and frees the space when the buffer is
    dropped (nothing is left behind by name).
    The bytes are the provider's own scratch; a bundle built from them is
    hashed and checked against the committed trace like any other. Each buffer
    is one mapping, so `vm.max_map_count` (65,530 by default) bounds how many
    a process holds; past it, or past the disk, `empty` is a CheckpointError.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise CheckpointError(f"snapshot directory {self.path} does not exist")
        if not self.path.is_dir():
            raise CheckpointError(f"snapshot directory {self.path} is not a directory")
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise CheckpointError(f"snapshot directory {self.path} is not writable")

    def empty(self, numel: int, dtype: torch.dtype) -> torch.Tensor:
        """A new uninitialised CPU buffer of `numel` elements, backed by a file here."""
        nbytes = numel * dtype.itemsize
        if nbytes == 0:
            return torch.empty(0, dtype=dtype)
        try:
            fd, name = tempfile.mkstemp(dir=self.path, prefix=".tessera-snapshot-")
        except OSError as exc:
            raise CheckpointError(
                f"cannot create a snapshot file in {self.path}: {exc.strerror}"
            ) from None
        try:
            try:
                os.posix_fallocate(fd, 0, nbytes)
            finally:
                os.close(fd)
            # torch maps the file and keeps no descriptor (Python's mmap keeps one per
            # buffer: a round's thousands of snapshots would exhaust the process's fds).
            return torch.from_file(name, shared=True, size=numel, dtype=dtype)
        except (OSError, RuntimeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
            raise CheckpointError(
                f"cannot reserve {nbytes:,} bytes for a snapshot in {self.path}: {reason}"
            ) from None
        finally:
            os.unlink(name)


def state_hash(tensors: Mapping[str, torch.Tensor] | StageState) -> str:
    """The 0x hash of a stage state (parameters and optimizer state)."""
    if isinstance(tensors, StageState):
        tensors = tensors.tensors
    return tensors_hash(tensors, domain="stage-state")


def state_to_bytes(state: StageState, *, content_hash: str | None = None) -> bytes:
    """Serialise a stage state to safetensors bytes carrying its own content hash.

    `content_hash` may pass `state_hash(state)` when the caller already has it.
    """
    metadata = {
        "format": FORMAT,
        "stage": str(state.stage),
        "num_stages": str(state.num_stages),
        "state_hash": content_hash or state_hash(state),
        "extra": json.dumps(dict(state.extra), sort_keys=True),
    }
    return canonical_safetensors(state.tensors, metadata)


def state_from_bytes(data: bytes, *, stage: int | None = None) -> StageState:
    """Parse safetensors bytes into a StageState, checking format, stage and content hash."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CheckpointError(f"stage checkpoint must be bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        tensors = st_load(data)
        metadata = _read_metadata(data)
    except (SafetensorError, ValueError, RuntimeError, OverflowError) as exc:
        raise CheckpointError(f"stage checkpoint is not valid safetensors: {exc}") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"stage checkpoint has format {metadata.get('format')!r}")
    try:
        own_stage = int(metadata["stage"])
        num_stages = int(metadata["num_stages"])
        extra = json.loads(metadata.get("extra", "{}"))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"stage checkpoint metadata is malformed: {exc}") from None
    if stage is not None and own_stage != stage:
        raise CheckpointError(f"checkpoint is for stage {own_stage}, not stage {stage}")
    state = StageState(tensors=tensors, stage=own_stage, num_stages=num_stages, extra=extra)
    actual = state_hash(state)
    if actual != metadata.get("state_hash"):
        raise CheckpointError(
            f"stage checkpoint content hash {actual} does not match its header "
            f"{metadata.get('state_hash')}"
        )
    return dataclasses.replace(state, content_hash=actual)


def _read_metadata(data: bytes) -> dict[str, str]:
    # safetensors' torch loader drops the metadata; the header is a u64
    # little-endian length followed by that many bytes of JSON.
    if len(data) < 8:
        raise ValueError("file shorter than its header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError("header length beyond end of file")
    header = json.loads(data[8 : 8 + n])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("metadata is not an object")
    return metadata
