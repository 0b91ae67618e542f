"""The Kubo RPC backend: the same `ContentStore` over a node's HTTP API (/api/v0).

Tested against js-ipfs (its RPC is Kubo-compatible) and written against the
RPC only. Every call is a POST with a timeout; connection failures are
retried with exponential backoff and end in one `StoreUnreachable` line.
Nothing the node returns is trusted: added CIDs are compared with the CID
computed here, blocks are verified, and `cat` streams raw leaves in one
request while checking each against the leaf CID its (verified) parent names.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from agents.storage.base import ContentStore
from agents.storage.car import CARReader
from agents.storage.errors import ContentNotFound, StoreError, StoreUnreachable
from agents.storage.multiformats import CID, CODEC_NAMES, DAG_PB, IDENTITY, parse_cid
from agents.storage.unixfs import (
    CHUNK_SIZE,
    RawLeaf,
    bytes_chunks,
    child_links,
    import_file,
    import_tree,
    iter_file_plan,
    read_chunks,
    tree_entries,
)

_STREAM_PIECE = 64 * 1024
# Node answers that mean "this content is not there", as Kubo and js-ipfs word them.
_NOT_FOUND_HINTS = ("not found", "timed out", "timeout", "no link named", "aborted")


def api_url(spec: str) -> str:
    """Turn `/ip4/H/tcp/P` (also /ip6, /dns, /dns4, /dns6; optional /http|/https)
    or an http(s) URL into the RPC base URL `http://H:P`."""
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        return spec.rstrip("/").removesuffix("/api/v0")
    parts = spec.strip("/").split("/")
    if len(parts) >= 4 and parts[0] in ("ip4", "ip6", "dns", "dns4", "dns6") and parts[2] == "tcp":
        host = f"[{parts[1]}]" if parts[0] == "ip6" else parts[1]
        try:
            port = int(parts[3])
        except ValueError:
            port = -1
        scheme = "https" if parts[4:5] == ["https"] else "http"
        if 0 < port < 65536 and len(parts) <= 5:
            return f"{scheme}://{host}:{port}"
    raise StoreError(f"not an IPFS API address: {spec!r} (want /ip4/HOST/tcp/PORT or a URL)")


class _Part:
    """One part of a multipart/form-data body, streamed when its turn comes."""

    def __init__(self, name: str, *, path: Path | None = None, data: bytes | None = None) -> None:
        self.name = name
        self.path = path
        self.data = data

    def chunks(self) -> Iterator[bytes]:
        if self.data is not None:
            yield self.data
        elif self.path is not None:
            with open(self.path, "rb") as fh:
                while piece := fh.read(_STREAM_PIECE):
                    yield piece


def _multipart(parts: list[_Part | tuple[str, None]]) -> tuple[str, Callable[[], Iterator[bytes]]]:
    """A streaming multipart body as Kubo's add and dag/import read it.

    Each file part carries its path, URL-escaped, in `filename`; a
    `(name, None)` entry is a directory part (`application/x-directory`).
    Returns the content type and a factory, so a retry can send it again.
    """
    boundary = uuid.uuid4().hex

    def body() -> Iterator[bytes]:
        for part in parts:
            if isinstance(part, tuple):
                name, ctype, chunks = part[0], "application/x-directory", iter(())
            else:
                name, ctype, chunks = part.name, "application/octet-stream", part.chunks()
            filename = quote(name, safe="")
            yield (
                f"--{boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            yield from chunks
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return f"multipart/form-data; boundary={boundary}", body


class _Reader:
    """Exact-length reads over an iterator of byte pieces."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces
        self._buffer = bytearray()

    def read_exact(self, n: int) -> bytes:
        while len(self._buffer) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buffer += piece
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


class KuboStore(ContentStore):
    """A `ContentStore` over a Kubo-compatible node's RPC API."""

    def __init__(
        self,
        api: str,
        timeout: float = 60.0,
        retries: int = 3,
        *,
        fetch_timeout: float = 30.0,
        backoff: float = 0.25,
    ) -> None:
        """Connect lazily to `api` (multiaddr or URL).

        `timeout` bounds each HTTP exchange; `retries` is how many times a
        failed connection is retried (with exponential `backoff` seconds);
        `fetch_timeout` bounds how long the node may search for a block it
        does not hold before the read counts as ContentNotFound.
        """
        self.base = api_url(api)
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.fetch_timeout = fetch_timeout
        self._client = httpx.Client(
            base_url=self.base + "/api/v0/",
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def __repr__(self) -> str:
        return f"KuboStore({self.base!r})"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    # --- transport ----------------------------------------------------------------------

    def _send(self, endpoint: str, params: dict[str, Any], body=None, stream: bool = False):
        """POST with retries on transport failures; returns an httpx.Response."""
        attempt = 0
        while True:
            try:
                headers = None
                content = None
                if body is not None:
                    ctype, factory = body
                    headers = {"Content-Type": ctype}
                    content = factory()
                request = self._client.build_request(
                    "POST", endpoint, params=params, content=content, headers=headers
                )
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise StoreUnreachable(
                        f"IPFS node at {self.base} is unreachable "
                        f"({attempt + 1} attempts, last: {type(exc).__name__}: {exc})"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            if response.status_code in (502, 503, 504) and attempt < self.retries:
                response.close()
                time.sleep(self.backoff * 2**attempt)
                attempt += 1
                continue
            if response.status_code != 200:
                if stream:
                    response.read()
                response.close()
                raise self._node_error(endpoint, params, response)
            return response

    def _node_error(self, endpoint: str, params: dict[str, Any], response) -> StoreError:
        try:
            message = json.loads(response.content)["Message"]
        except (ValueError, KeyError, TypeError):
            message = response.text.strip()[:200] or f"HTTP {response.status_code}"
        arg = params.get("arg")
        where = f" {arg}" if arg else ""
        if any(hint in message.lower() for hint in _NOT_FOUND_HINTS) and arg:
            return ContentNotFound(f"{arg} not found on the IPFS node at {self.base}: {message}")
        return StoreError(f"IPFS node {endpoint}{where} failed: {message}")

    def _call(self, endpoint: str, params: dict[str, Any] | None = None, body=None) -> bytes:
        response = self._send(endpoint, params or {}, body)
        return response.content

    def _ndjson(self, endpoint: str, params: dict[str, Any], body=None) -> list[dict]:
        text = self._call(endpoint, params, body).decode()
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise StoreError(f"IPFS node {endpoint} answered non-JSON: {text[:200]!r}") from None

    # --- block primitives -------------------------------------------------------------------

    def get_block(self, cid: CID) -> bytes:
        """block/get, verified against `cid`."""
        if cid.hash_code == IDENTITY:
            return cid.digest
        block = self._call("block/get", {"arg": str(cid), "timeout": f"{self.fetch_timeout}s"})
        cid.verify(block)
        return block

    def has_block(self, cid: CID) -> bool:
        """block/stat without going to the network (offline, short timeout)."""
        if cid.hash_code == IDENTITY:
            return True
        try:
            self._call("block/stat", {"arg": str(cid), "offline": "true", "timeout": "1s"})
        except ContentNotFound:
            return False
        return True

    def put_block(self, cid: CID, block: bytes) -> None:
        """dag/put with the block's own codec; the node's CID must equal `cid`."""
        cid.verify(block)
        codec = CODEC_NAMES.get(cid.codec)
        if codec is None:
            raise StoreError(f"cannot put {cid}: codec 0x{cid.codec:x} is not supported")
        params = {"input-codec": codec, "store-codec": codec, "hash": "sha2-256", "pin": "false"}
        body = _multipart([_Part("block", data=block)])
        answer = json.loads(self._call("dag/put", params, body))
        got = parse_cid(answer["Cid"]["/"])
        if (got.codec, got.mh) != (cid.codec, cid.mh):
            raise StoreError(f"IPFS node stored block {cid} as {got}")

    # --- adding -----------------------------------------------------------------------------

    def _add(self, parts: list, root_name: str, expected: CID, pin: bool, cid_version: int) -> str:
        params = {
            "cid-version": str(cid_version),
            "raw-leaves": "true" if cid_version == 1 else "false",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true" if pin else "false",
            "wrap-with-directory": "false",
            **({"cid-base": "base32"} if cid_version == 1 else {}),
            "progress": "false",
        }
        lines = self._ndjson("add", params, _multipart(parts))
        roots = [line for line in lines if line.get("Name") == root_name and "Hash" in line]
        if not roots and len(parts) == 1:
            # A lone file is sometimes reported under its CID rather than its name.
            roots = [line for line in lines if "Hash" in line]
        if not roots:
            raise StoreError(f"IPFS node add returned no entry for {root_name!r}")
        got = parse_cid(roots[-1]["Hash"])
        if got != expected:
            raise StoreError(
                f"IPFS node computed {got} but Tessera computes {expected}: "
                "the node's add settings differ from Kubo's defaults"
            )
        return str(expected)

    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        """add (CIDv1, raw leaves); returns the CID after checking it."""
        expected = import_file(bytes_chunks(bytes(data))).cid
        return self._add([_Part("data", data=bytes(data))], "data", expected, pin, 1)

    def add_file(self, path: str | os.PathLike, *, pin: bool = True, cid_version: int = 1) -> str:
        """add a file, streamed from disk; the CID is computed locally and compared."""
        path = Path(path)
        if path.is_dir():
            raise StoreError(f"{path} is a folder: use add_dir")
        try:
            with open(path, "rb") as fh:
                expected = import_file(read_chunks(fh), cid_version=cid_version).cid
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        return self._add([_Part(path.name, path=path)], path.name, expected, pin, cid_version)

    def add_dir(self, path: str | os.PathLike, *, pin: bool = True) -> str:
        """add a folder as one multipart request (parents before children)."""
        path = Path(path)
        if not path.is_dir():
            raise StoreError(f"{path} is not a folder")
        expected = import_tree(path).cid
        # The root's name does not enter its CID; a fixed one also dodges
        # js-ipfs's parser, which drops one-character part names.
        root_name = "tessera-root"
        parts: list = []

        def collect(folder: Path, rel: str) -> None:
            parts.append((rel, None))
            for child in tree_entries(folder):
                child_rel = f"{rel}/{child.name}"
                if child.is_dir():
                    collect(child, child_rel)
                else:
                    parts.append(_Part(child_rel, path=child))

        collect(path, root_name)
        return self._add(parts, root_name, expected, pin, 1)

    # --- reading ----------------------------------------------------------------------------

    def cat_stream(self, cid: str) -> Iterator[bytes]:
        """Stream a file: internal nodes by block/get, raw leaves by one `cat`
        request, each leaf hashed against the CID its verified parent names."""
        root = parse_cid(cid)
        return self._stream(root, iter_file_plan(root, self.get_block))

    def _open_cat(self, cid: CID, offset: int) -> tuple[httpx.Response, _Reader]:
        response = self._send("cat", {"arg": str(cid), "offset": str(offset)}, stream=True)
        return response, _Reader(response.iter_bytes(_STREAM_PIECE))

    def _stream(self, root: CID, plan: Iterable[bytes | RawLeaf]) -> Iterator[bytes]:
        offset = 0
        response: httpx.Response | None = None
        reader: _Reader | None = None
        reader_at = -1
        failures = 0
        try:
            for piece in plan:
                if not isinstance(piece, RawLeaf):
                    offset += len(piece)
                    yield piece
                    continue
                while True:
                    try:
                        if reader is None or reader_at != offset:
                            if response is not None:
                                response.close()
                            response, reader = self._open_cat(root, offset)
                            reader_at = offset
                        data = reader.read_exact(piece.size)
                        break
                    except httpx.TransportError as exc:
                        # The stream broke mid-file: resume at the current offset.
                        failures += 1
                        reader = None
                        if failures > self.retries:
                            raise StoreUnreachable(
                                f"IPFS node at {self.base} dropped the stream of {root}: {exc}"
                            ) from None
                        time.sleep(self.backoff * 2 ** (failures - 1))
                if len(data) != piece.size:
                    raise StoreError(
                        f"IPFS node's cat of {root} ended early at byte {offset + len(data)}"
                    )
                piece.cid.verify(data)
                offset += len(data)
                reader_at = offset
                yield data
        finally:
            if response is not None:
                response.close()

    # --- pins and gc ------------------------------------------------------------------------

    def pin(self, cid: str) -> None:
        """pin/add (recursive)."""
        self._call("pin/add", {"arg": str(parse_cid(cid)), "recursive": "true"})

    def unpin(self, cid: str) -> None:
        """pin/rm; StoreError if not pinned."""
        self._call("pin/rm", {"arg": str(parse_cid(cid)), "recursive": "true"})

    def gc(self) -> int:
        """repo/gc; returns the number of blocks the node reports removed."""
        lines = self._ndjson("repo/gc", {})
        errors = [line["Error"] for line in lines if line.get("Error")]
        if errors:
            raise StoreError(f"IPFS node repo/gc failed: {errors[0]}")
        return sum(1 for line in lines if line.get("Key"))

    # --- CAR --------------------------------------------------------------------------------

    def import_car(self, path: Path) -> list[str]:
        """Verify a CAR here (every block, whole DAGs), then dag/import it and pin its roots."""
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                reader = CARReader(fh)
                links: dict[bytes, list[CID]] = {}
                for cid, block in reader:
                    links[cid.to_v1().to_bytes()] = (
                        child_links(cid, block) if cid.codec == DAG_PB else []
                    )
                roots = reader.roots
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        for root in roots:
            stack = [root]
            while stack:
                current = stack.pop()
                key = current.to_v1().to_bytes()
                if key not in links and current.hash_code != IDENTITY:
                    raise StoreError(
                        f"{path} does not hold the whole DAG of root {root} (missing {current})"
                    )
                stack.extend(links.get(key, []))
        lines = self._ndjson(
            "dag/import", {"pin-roots": "true"}, _multipart([_Part(path.name, path=path)])
        )
        for line in lines:
            root = line.get("Root") or {}
            if root.get("PinErrorMsg"):
                raise StoreError(
                    f"IPFS node could not pin {root.get('Cid')}: {root['PinErrorMsg']}"
                )
        return [str(root) for root in roots]
