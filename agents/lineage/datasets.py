"""Datasets: text in, byte-level token shards and a DatasetManifest out.

The tokenizer is the identity on UTF-8 bytes (a vocabulary of 256), so a
shard is simply a raw byte file. Input is a text file, a JSONL file (one
object per line with a "text" string) or a folder of them, read in sorted
order; documents are concatenated, each ending in a newline, and cut into
fixed-size shards. The same input always gives the same CIDs.
"""

from __future__ import annotations

import codecs
import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from agents.lineage.documents import DatasetManifest, ShardRef
from agents.lineage.store import LineageError, save_document
from agents.storage.base import ContentStore

# Folders skipped when walking a dataset folder (as well as hidden entries).
_SKIPPED_DIRS = {"__pycache__"}

# A fixed, sorted set of standard-library modules present in every CPython 3
# install: ~2 MB of real text for the demo, with nothing shipped in the repo.
DEMO_MODULES = (
    "argparse", "ast", "base64", "bisect", "calendar", "configparser", "contextlib",
    "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions",
    "functools", "gettext", "glob", "heapq", "inspect", "ipaddress", "locale", "operator",
    "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "shlex", "shutil",
    "socket", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "tokenize", "traceback", "typing", "uuid", "warnings", "weakref",
)  # fmt: skip


class DatasetError(LineageError):
    """Dataset input that cannot be turned into shards (names the file at fault)."""


def _text_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetError(f"no such file or folder: {path}")
    files = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        files.extend(Path(root) / n for n in names if not n.startswith("."))
    return sorted(files, key=lambda p: p.relative_to(path).as_posix().encode())


def _decode(raw: bytes, where: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise DatasetError(f"{where} contains NUL bytes: not a text file")
    return text


# Text files are read in pieces of this size, so memory stays flat whatever their size.
READ_SIZE = 1 << 20


def _file_pieces(file: Path) -> Iterator[bytes]:
    with open(file, "rb") as fh:
        while piece := fh.read(READ_SIZE):
            yield piece


def check_text_file(file: Path) -> None:
    """DatasetError naming the file (and byte) unless it is UTF-8 text without NUL bytes.

    Streams the file through an incremental decoder: flat memory.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        for piece in _file_pieces(file):
            decoder.decode(piece)
            if b"\x00" in piece:
                where = offset + piece.index(b"\x00")
                raise DatasetError(f"{file} contains NUL bytes (byte {where}): not a text file")
            offset += len(piece)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{file} is not UTF-8 text (near byte {offset + exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"cannot read {file}: {exc.strerror}") from None


def _jsonl_documents(file: Path) -> Iterator[bytes]:
    with open(file, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(_decode(line, where))
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where} is not JSON: {exc.msg}") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise DatasetError(f"{where} has no string field 'text'")
            if text:
                raw = text.encode("utf-8")
                yield raw if raw.endswith(b"\n") else raw + b"\n"


def _text_document(file: Path) -> Iterator[bytes]:
    """A checked text file's bytes in pieces, ending in a newline (nothing if empty)."""
    last = b""
    for piece in _file_pieces(file):
        last = piece
        yield piece
    if last and not last.endswith(b"\n"):
        yield b"\n"


def token_stream(
    path: Path,
    *,
    skip_binary: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The dataset's byte tokens in order, in pieces of bounded size.

    Each file is checked before any of its bytes is taken, so with
    `skip_binary` a binary file is left out whole (and reported to `on_skip`);
    without it, the first binary file is a DatasetError.
    """
    for file in _text_files(Path(path)):
        try:
            if file.suffix != ".jsonl":
                check_text_file(file)
        except DatasetError as exc:
            if not skip_binary:
                raise
            if on_skip is not None:
                on_skip(file, str(exc))
            continue
        if file.suffix == ".jsonl":
            yield from _jsonl_documents(file)
            if on_progress is not None:
                on_progress(file.stat().st_size)
            continue
        for piece in _text_document(file):
            yield piece
            if on_progress is not None:
                on_progress(len(piece))


def iter_documents(path: Path) -> Iterator[str]:
    """The documents of a dataset input, in their fixed order (small inputs: whole strings).

    A `.jsonl` file gives one document per non-empty line (its "text"
    field); any other file is one document.
    """
    for file in _text_files(Path(path)):
        if file.suffix == ".jsonl":
            for raw in _jsonl_documents(file):
                yield raw.decode("utf-8")
        else:
            check_text_file(file)
            yield file.read_text(encoding="utf-8")


def input_size(path: Path) -> int:
    """Total bytes of the files a dataset input would read (for progress bars)."""
    return sum(f.stat().st_size for f in _text_files(Path(path)))


def build_dataset(
    store: ContentStore,
    path: Path,
    *,
    name: str,
    source: str,
    license: str,
    shard_size: int = 1 << 20,
    skip_binary: bool = False,
    on_skip: Callable[[Path, str], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[str, DatasetManifest]:
    """Shard a text / JSONL file or folder into byte-token shards; store them and
    the manifest; return (manifest CID, manifest).

    Streams: memory holds at most one shard plus one read piece, whatever the
    input size; `on_progress(n)` is told of each n input bytes consumed.
    Shards are stored unpinned and pinned only once the manifest is stored,
    so a failure leaves nothing pinned (`store gc` clears it).
    """
    if shard_size < 1:
        raise DatasetError(f"shard size must be at least 1 byte, got {shard_size}")
    shards: list[ShardRef] = []
    buffer = bytearray()

    def flush(data: bytes) -> None:
        cid = store.add_bytes(data, pin=False)
        shards.append(
            ShardRef(cid=cid, size=len(data), tokens=len(data), name=f"shard-{len(shards):05d}")
        )

    for piece in token_stream(
        Path(path), skip_binary=skip_binary, on_skip=on_skip, on_progress=on_progress
    ):
        buffer += piece
        if len(buffer) >= shard_size:
            view = memoryview(buffer)
            full = len(buffer) - len(buffer) % shard_size
            for start in range(0, full, shard_size):
                flush(bytes(view[start : start + shard_size]))
            view.release()
            del buffer[:full]
    if buffer:
        flush(bytes(buffer))
    if not shards:
        raise DatasetError(f"{path} holds no text")
    manifest = DatasetManifest(
        name=name,
        source=source,
        license=license,
        shards=shards,
        total_tokens=sum(s.tokens for s in shards),
    )
    cid = save_document(store, manifest)
    for shard in dict.fromkeys(s.cid for s in shards):
        store.pin(shard)
    return cid, manifest


def demo_corpus_path(dest: Path | None = None) -> Path:
    """A folder of ~2 MB of Python standard-library source, present on every machine.

    The modules in DEMO_MODULES are copied (once) into
    `dest` or ~/.tessera/corpus/python-X.Y.Z-stdlib, so the folder holds only
    those files; a module missing from an unusual install is skipped.
    """
    version = ".".join(str(v) for v in sys.version_info[:3])
    folder = (
        Path(dest) if dest else Path.home() / ".tessera" / "corpus" / f"python-{version}-stdlib"
    )
    if folder.is_dir() and any(folder.iterdir()):
        return folder
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".corpus-", dir=folder.parent))
    try:
        copied = 0
        for module in DEMO_MODULES:
            source = stdlib / f"{module}.py"
            if source.is_file():
                shutil.copyfile(source, staging / source.name)
                copied += 1
        if not copied:
            raise DatasetError(f"no standard-library sources found under {stdlib}")
        # Rename into place so a crash never leaves a half-copied corpus behind.
        try:
            staging.rename(folder)
        except OSError:
            if not (folder.is_dir() and any(folder.iterdir())):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder
