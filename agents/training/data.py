"""Which dataset bytes each micro-batch sees, as a pure function of public values.

The dataset (a `DatasetManifest` of byte shards) is cut into chunks of
seq_len + 1 bytes that never cross a shard boundary, numbered in manifest
order. Sample n of a job (counted over rounds, steps, micro-batches and rows)
is chunk perm_e(n mod N) of epoch e = n // N, where perm_e is a keyed Feistel
permutation of [0, N) seeded by (seed, job id, epoch). So rounds continue
through the data in a seeded order, every epoch visits every chunk once, and a
validator recomputes any micro-batch's windows from the manifest, the spec
and (job id, round, step, micro_batch) alone — never from the provider's word.

Row r of a micro-batch uses its chunk c as input c[:-1] (stage 0) and
target c[1:] (last stage); both stages record the same `data_ref`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from agents.lineage.documents import DatasetManifest
from agents.spec import JobSpec
from agents.training.errors import DataError

Window = tuple[str, int, int]  # (shard CID, byte offset, length)


def _chunk_table(manifest: DatasetManifest, chunk_len: int) -> list[int]:
    """Cumulative chunk counts per shard (starts with 0)."""
    table = [0]
    for shard in manifest.shards:
        table.append(table[-1] + shard.tokens // chunk_len)
    return table


def _feistel(x: int, half_bits: int, key: bytes) -> int:
    mask = (1 << half_bits) - 1
    left, right = x >> half_bits, x & mask
    for r in range(4):
        f = hashlib.sha256(key + bytes([r]) + right.to_bytes(8, "little")).digest()
        left, right = right, left ^ (int.from_bytes(f[:8], "little") & mask)
    return (left << half_bits) | right


def permute(position: int, n: int, key: bytes) -> int:
    """A keyed bijection of [0, n): position -> chunk number (cycle-walking Feistel)."""
    if not 0 <= position < n:
        raise DataError(f"position {position} is not in 0..{n - 1}")
    if n == 1:
        return 0
    half_bits = max(1, ((n - 1).bit_length() + 1) // 2)
    x = position
    # The Feistel network permutes [0, 4**half_bits) ⊇ [0, n); walking the
    # cycle until it lands below n restricts it to a permutation of [0, n).
    while True:
        x = _feistel(x, half_bits, key)
        if x < n:
            return x


def batch_window(
    manifest: DatasetManifest,
    seed: int,
    round: int,
    step: int,
    micro_batch: int,
    *,
    job_id: int,
    steps_per_round: int,
    micro_batches: int,
    micro_batch_size: int,
    seq_len: int,
) -> list[Window]:
    """The (shard CID, offset, length) window of each row of one micro-batch."""
    if not (0 <= step < steps_per_round and 0 <= micro_batch < micro_batches and round >= 0):
        raise DataError(f"no micro-batch (round {round}, step {step}, micro_batch {micro_batch})")
    chunk_len = seq_len + 1
    table = _chunk_table(manifest, chunk_len)
    total = table[-1]
    if total == 0:
        raise DataError(f"dataset {manifest.name!r} has no shard of at least {chunk_len} bytes")
    first = ((round * steps_per_round + step) * micro_batches + micro_batch) * micro_batch_size
    windows = []
    for n in range(first, first + micro_batch_size):
        epoch, position = divmod(n, total)
        key = hashlib.sha256(f"tessera/data-order@1/{seed}/{job_id}/{epoch}".encode()).digest()
        chunk = permute(position, total, key)
        shard_index = bisect.bisect_right(table, chunk) - 1
        shard = manifest.shards[shard_index]
        windows.append((shard.cid, (chunk - table[shard_index]) * chunk_len, chunk_len))
    return windows


def spec_window(
    manifest: DatasetManifest, spec: JobSpec, job_id: int, round: int, step: int, micro_batch: int
) -> list[Window]:
    """`batch_window` with the sizes and seed taken from a job spec."""
    return batch_window(
        manifest,
        spec.determinism.seed,
        round,
        step,
        micro_batch,
        job_id=job_id,
        steps_per_round=spec.training.steps_per_round,
        micro_batches=spec.training.micro_batches,
        micro_batch_size=spec.training.micro_batch_size,
        seq_len=spec.model.seq_len,
    )


def window_ref(windows: list[Window], chunks: list[bytes]) -> str:
    """The data_ref of a micro-batch: sha256 of its windows and the bytes they hold."""
    h = hashlib.sha256(b"tessera/data-ref@1")
    h.update(json.dumps([list(w) for w in windows], separators=(",", ":")).encode())
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "little") + chunk)
    return "0x" + h.hexdigest()


@dataclass(frozen=True)
class MicroBatch:
    """The tokens of one micro-batch: inputs for stage 0, targets for the last stage."""

    tokens: torch.Tensor  # int64 (rows, seq_len)
    targets: torch.Tensor  # int64 (rows, seq_len)
    data_ref: str
    windows: tuple[Window, ...]


class DataSource:
    """Reads the seeded windows of a job's dataset from a content store."""

    def __init__(self, spec: JobSpec, store: Any, manifest: DatasetManifest | None = None) -> None:
        self.spec = spec
        self.store = store
        if manifest is None:
            try:
                manifest = DatasetManifest.model_validate(store.get_json(spec.dataset))
            except ValueError as exc:
                raise DataError(f"dataset manifest {spec.dataset} is invalid: {exc}") from None
        self.manifest = manifest
        self._sizes = {s.cid: s.size for s in manifest.shards}
        self._shards: dict[str, bytes] = {}

    def windows(self, job_id: int, round: int, step: int, micro_batch: int) -> list[Window]:
        """The seeded windows of one micro-batch."""
        return spec_window(self.manifest, self.spec, job_id, round, step, micro_batch)

    def shard(self, cid: str) -> bytes:
        """A shard's bytes (cached; the store checks them against the CID)."""
        if cid not in self._sizes:
            raise DataError(f"shard {cid} is not in dataset {self.manifest.name!r}")
        if cid not in self._shards:
            data = self.store.cat(cid)
            if len(data) != self._sizes[cid]:
                raise DataError(
                    f"shard {cid} has {len(data)} bytes, manifest says {self._sizes[cid]}"
                )
            self._shards[cid] = data
        return self._shards[cid]

    def read(self, windows: list[Window]) -> MicroBatch:
        """The micro-batch held by these windows."""
        chunks = []
        for cid, offset, length in windows:
            data = self.shard(cid)
            if offset < 0 or offset + length > len(data):
                raise DataError(f"window {offset}+{length} is outside shard {cid}")
            chunks.append(data[offset : offset + length])
        rows = torch.frombuffer(bytearray(b"".join(chunks)), dtype=torch.uint8)
        rows = rows.view(len(chunks), -1).to(torch.int64)
        return MicroBatch(
            tokens=rows[:, :-1].contiguous(),
            targets=rows[:, 1:].contiguous(),
            data_ref=window_ref(list(windows), chunks),
            windows=tuple(windows),
        )

    def micro_batch(self, job_id: int, round: int, step: int, micro_batch: int) -> MicroBatch:
        """The seeded micro-batch for (job, round, step, micro_batch)."""
        return self.read(self.windows(job_id, round, step, micro_batch))
