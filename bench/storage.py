"""Storage benchmark: hash a generated 1 GiB stream and report time and peak RSS.

The CID builder keeps at most 174 links per tree level and one 256 KiB chunk
in memory, so peak RSS should stay near the interpreter's baseline whatever
the file size. Also times adding 64 MiB to the embedded store and reading it
back (every block verified).

    python bench/storage.py [--gib 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import tempfile
import time
from collections.abc import Iterator

from agents.storage import EmbeddedStore
from agents.storage.unixfs import CHUNK_SIZE, import_file


def _rss_mib() -> float:
    # ru_maxrss is KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generated_chunks(total: int) -> Iterator[bytes]:
    """Deterministic incompressible chunks (a sha256 counter stream), never all in memory."""
    seed = hashlib.sha256(b"tessera-bench").digest()
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(8192))
    for offset in range(0, total, CHUNK_SIZE):
        # Vary each chunk so no two leaves dedupe.
        head = offset.to_bytes(8, "big")
        yield (head + block[8:])[: min(CHUNK_SIZE, total - offset)]


def main() -> None:
    """Print figures for the README."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=1.0)
    args = parser.parse_args()
    total = int(args.gib * (1 << 30))

    base = _rss_mib()
    started = time.perf_counter()
    root = import_file(generated_chunks(total))
    elapsed = time.perf_counter() - started
    print(f"hash {total / 2**20:.0f} MiB: {elapsed:.2f} s ({total / 2**20 / elapsed:.0f} MiB/s)")
    print(f"  root {root.cid}  tsize {root.tsize}")
    print(f"  peak RSS {_rss_mib():.0f} MiB (baseline before hashing {base:.0f} MiB)")

    size = 64 << 20
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddedStore(tmp)
        data = b"".join(generated_chunks(size))
        started = time.perf_counter()
        cid = store.add_bytes(data)
        added = time.perf_counter() - started
        started = time.perf_counter()
        assert store.cat(cid) == data
        read = time.perf_counter() - started
    print(f"embedded add 64 MiB (fsync per block): {added:.2f} s; verified cat: {read:.2f} s")


if __name__ == "__main__":
    main()
