"""The embedded default store: one file per block on local disk, keyed by CID.

Layout under `root`:

    blocks/<xy>/<cidv1>   one block; <xy> is two characters of the CID so no
                          folder grows huge (the same idea as Kubo's flatfs)
    pins/<cidv1>          a recursive pin (an empty marker file)
    tmp/                  blocks being written
    lock                  flock: shared while adding or pinning, exclusive in gc

A block is written to `tmp/`, flushed to disk and renamed into place, so a
crash mid-add never leaves a half block under its CID. Every read hashes the
bytes again: a tampered or truncated file is an `IntegrityError` naming the
CID, never returned data. Writing a block the store holds corrupt replaces
it (so re-adding the content heals the store); `verify` scrubs every block;
a failed CAR import removes the blocks it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agents.storage.base import ContentStore, VerifyReport
from agents.storage.car import CARReader
from agents.storage.errors import ContentNotFound, IntegrityError, StoreError
from agents.storage.multiformats import CID, IDENTITY, RAW, parse_cid
from agents.storage.unixfs import (
    DagEntry,
    bytes_chunks,
    child_links,
    import_file,
    import_tree,
    open_input,
    read_chunks,
)


class EmbeddedStore(ContentStore):
    """A CID-keyed block store in a local folder (see the module docstring)."""

    def __init__(self, root: str | os.PathLike, *, fsync: bool = True) -> None:
        """Open (creating if needed) a store at `root`.

        `fsync=False` skips flushing each block to disk before it is renamed
        into place: faster, still never a half block, but a power loss may
        lose the last blocks written.
        """
        self.root = Path(root).expanduser()
        self.fsync = fsync
        try:
            for sub in ("blocks", "pins", "tmp"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            (self.root / "lock").touch(exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create a block store at {self.root}: {exc}") from None

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.root)!r})"

    # --- layout and locking -------------------------------------------------------

    @staticmethod
    def _key(cid: CID) -> str:
        # v0 and v1 name the same dag-pb block: store it once, under v1.
        return cid.to_v1().encode()

    def _block_path(self, cid: CID) -> Path:
        key = self._key(cid)
        return self.root / "blocks" / key[-3:-1] / key

    @contextlib.contextmanager
    def _locked(self, exclusive: bool = False) -> Iterator[None]:
        with open(self.root / "lock", "rb") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # --- block primitives ---------------------------------------------------------

    def get_block(self, cid: CID) -> bytes:
        """Read a block and verify it against its CID."""
        if cid.hash_code == IDENTITY:
            return cid.digest
        try:
            block = self._block_path(cid).read_bytes()
        except FileNotFoundError:
            raise ContentNotFound(f"block {cid} is not in the store at {self.root}") from None
        except OSError as exc:
            raise StoreError(f"cannot read block {cid}: {exc}") from None
        cid.verify(block)
        return block

    def has_block(self, cid: CID) -> bool:
        """Whether the block file exists (identity CIDs are always held)."""
        return cid.hash_code == IDENTITY or self._block_path(cid).is_file()

    def _held_intact(self, cid: CID, path: Path) -> bool:
        """Whether a good copy of the block is on disk (a corrupt one does not count)."""
        try:
            cid.verify(path.read_bytes())
        except FileNotFoundError:
            return False
        except (IntegrityError, OSError):
            return False  # corrupt or unreadable: the caller's good bytes replace it
        return True

    def put_block(self, cid: CID, block: bytes) -> bool:
        """Verify, then write atomically (tmp file, flush, rename); returns whether it wrote.

        A block already held is left alone only if its bytes still verify: a
        corrupt copy is replaced, so re-adding content (or importing a good
        CAR) heals the store.
        """
        cid.verify(block)
        if cid.hash_code == IDENTITY:
            return False
        path = self._block_path(cid)
        if path.is_file() and self._held_intact(cid, path):
            return False
        path.parent.mkdir(exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.root / "tmp", prefix="blk-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(block)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return True

    # --- adding ---------------------------------------------------------------------

    def _finish_add(self, entry: DagEntry, pin: bool) -> str:
        if pin:
            self._write_pin(entry.cid)
        return str(entry.cid)

    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        """Add bytes as a file (CIDv1, raw leaves); return its CID."""
        with self._locked():
            entry = import_file(bytes_chunks(bytes(data)), self.put_block)
            return self._finish_add(entry, pin)

    def add_file(self, path: str | os.PathLike, *, pin: bool = True, cid_version: int = 1) -> str:
        """Add a file, streaming it chunk by chunk; return its CID."""
        path = Path(path)
        if path.is_dir():
            raise StoreError(f"{path} is a folder: use add_dir")
        with open_input(path) as stream, self._locked():
            entry = import_file(read_chunks(stream), self.put_block, cid_version=cid_version)
            return self._finish_add(entry, pin)

    def add_dir(self, path: str | os.PathLike, *, pin: bool = True) -> str:
        """Add a folder recursively (sorted entries, hidden ones skipped)."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"{path} is not a folder")
        with self._locked():
            entry = import_tree(path, self.put_block)
            return self._finish_add(entry, pin)

    # --- pins and gc -------------------------------------------------------------------

    def _write_pin(self, cid: CID) -> None:
        (self.root / "pins" / self._key(cid)).touch(exist_ok=True)

    def pin(self, cid: str) -> None:
        """Pin a whole DAG; ContentNotFound naming the first missing block."""
        parsed = parse_cid(cid)
        with self._locked():
            missing = self.missing_blocks(parsed)
            if missing:
                raise ContentNotFound(
                    f"cannot pin {parsed}: {len(missing)} block(s) missing, e.g. {missing[0]}"
                )
            self._write_pin(parsed)

    def unpin(self, cid: str) -> None:
        """Remove a pin; StoreError if there is none."""
        parsed = parse_cid(cid)
        try:
            (self.root / "pins" / self._key(parsed)).unlink()
        except FileNotFoundError:
            raise StoreError(f"{parsed} is not pinned") from None

    def pins(self) -> list[str]:
        """The pinned root CIDs (as CIDv1 text)."""
        return sorted(p.name for p in (self.root / "pins").iterdir())

    def gc(self) -> int:
        """Delete every block no pin reaches; return the count.

        Holds the lock exclusively, so no add or pin is half done while the
        live set is computed. A corrupt pinned block stops gc (IntegrityError)
        before anything is deleted.
        """
        with self._locked(exclusive=True):
            live: set[str] = set()
            for name in self.pins():
                stack = [parse_cid(name)]
                while stack:
                    current = stack.pop()
                    key = self._key(current)
                    if key in live:
                        continue
                    live.add(key)
                    if current.codec != RAW and self.has_block(current):
                        stack.extend(child_links(current, self.get_block(current)))
            removed = 0
            for shard in (self.root / "blocks").iterdir():
                for block_file in shard.iterdir():
                    if block_file.name not in live:
                        block_file.unlink()
                        removed += 1
            for stale in (self.root / "tmp").iterdir():
                stale.unlink(missing_ok=True)
            return removed

    # --- CAR ---------------------------------------------------------------------------

    def import_car(self, path: Path) -> list[str]:
        """Import a CARv1: verify and store every block, then pin its complete roots."""
        path = Path(path)
        written: list[CID] = []
        with open_input(path) as stream, self._locked():
            try:
                reader = CARReader(stream)
                for cid, block in reader:
                    if self.put_block(cid, block):
                        written.append(cid)
                for root in reader.roots:
                    missing = self.missing_blocks(root)
                    if missing:
                        raise StoreError(
                            f"{path} does not hold the whole DAG of root {root} "
                            f"({len(missing)} block(s) missing, e.g. {missing[0]})"
                        )
            except BaseException:
                # A failed import leaves the store as it was: drop what it wrote.
                for cid in written:
                    self._block_path(cid).unlink(missing_ok=True)
                raise
            for root in reader.roots:
                self._write_pin(root)
            return [str(root) for root in reader.roots]

    # --- scrub ---------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        """Re-hash every block on disk; report those whose bytes do not match their CID."""
        bad: list[tuple[str, str]] = []
        checked = 0
        with self._locked():
            for shard in sorted((self.root / "blocks").iterdir()):
                for block_file in sorted(shard.iterdir()):
                    checked += 1
                    try:
                        cid = parse_cid(block_file.name)
                    except StoreError:
                        bad.append((block_file.name, "file name is not a CID"))
                        continue
                    try:
                        cid.verify(block_file.read_bytes())
                    except IntegrityError:
                        bad.append((str(cid), "bytes do not hash to the CID"))
                    except OSError as exc:
                        bad.append((str(cid), f"unreadable: {exc.strerror}"))
        return VerifyReport(checked, bad)

    def remove_blocks(self, cids: list[str]) -> int:
        """Delete the named blocks (bad ones found by `verify`); returns how many."""
        removed = 0
        with self._locked(exclusive=True):
            for text in cids:
                try:
                    target = self._block_path(parse_cid(text))
                except StoreError:
                    target = None
                if target is None:
                    for shard in (self.root / "blocks").iterdir():
                        candidate = shard / text
                        if candidate.is_file():
                            target = candidate
                if target is not None and target.is_file():
                    target.unlink()
                    removed += 1
        return removed
