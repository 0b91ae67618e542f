"""Datasets: text in, byte-level token shards and a DatasetManifest out.

The tokenizer is the identity on UTF-8 bytes (a vocabulary of 256), so a
shard is simply a raw byte file. Input is a text file, a JSONL file (one
object per line with a "text" string) or a folder of them, read in sorted
order; documents are concatenated, each ending in a newline, and cut into
fixed-size shards. The same input always gives the same CIDs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
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


def iter_documents(path: Path) -> Iterator[str]:
    """The documents of a dataset input, in their fixed order.

    A `.jsonl` file gives one document per non-empty line (its "text"
    field); any other file is one document.
    """
    for file in _text_files(Path(path)):
        if file.suffix == ".jsonl":
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
                    yield text
        else:
            yield _decode(file.read_bytes(), str(file))


def _token_stream(path: Path) -> Iterator[bytes]:
    for doc in iter_documents(path):
        if not doc:
            continue
        raw = doc.encode("utf-8")
        yield raw if raw.endswith(b"\n") else raw + b"\n"


def build_dataset(
    store: ContentStore,
    path: Path,
    *,
    name: str,
    source: str,
    license: str,
    shard_size: int = 1 << 20,
) -> tuple[str, DatasetManifest]:
    """Shard a text / JSONL file or folder into byte-token shards; store them and
    the manifest; return (manifest CID, manifest)."""
    if shard_size < 1:
        raise DatasetError(f"shard size must be at least 1 byte, got {shard_size}")
    shards: list[ShardRef] = []
    buffer = bytearray()

    def flush(data: bytes) -> None:
        cid = store.add_bytes(data)
        shards.append(
            ShardRef(cid=cid, size=len(data), tokens=len(data), name=f"shard-{len(shards):05d}")
        )

    for piece in _token_stream(Path(path)):
        buffer += piece
        while len(buffer) >= shard_size:
            flush(bytes(buffer[:shard_size]))
            del buffer[:shard_size]
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
    return save_document(store, manifest), manifest


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
