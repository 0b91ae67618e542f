"""Saving and loading lineage documents: canonical JSON on the content store.

Loading validates: a missing, unknown or ill-typed field is one
`LineageError` line that names the field and the document's CID.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError

from agents.errors import TesseraError
from agents.lineage.documents import (
    CheckpointManifest,
    DatasetManifest,
    Document,
    JobSpec,
    RoundRecord,
)
from agents.storage.base import ContentStore

D = TypeVar("D", bound=Document)

# The `kind` of each document type that `load_document` can dispatch on.
DOCUMENT_KINDS: dict[str, type[Document]] = {
    "tessera/dataset@1": DatasetManifest,
    "tessera/job-spec@1": JobSpec,
    "tessera/checkpoint@1": CheckpointManifest,
    "tessera/round-record@1": RoundRecord,
}


class LineageError(TesseraError):
    """A lineage document is missing, malformed or of the wrong kind."""


def save_document(store: ContentStore, doc: Document) -> str:
    """Store a document as its canonical JSON bytes; return its CID."""
    if not isinstance(doc, Document):
        raise LineageError(f"not a lineage document: {type(doc).__name__}")
    return store.add_bytes(doc.canonical_json())


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first field at fault (and how many others are)."""
    errors = exc.errors()
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or "(document)"
    message = first["msg"]
    if first["type"] == "missing":
        message = "is missing"
    elif first["type"] == "extra_forbidden":
        message = "is not a known field"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"field '{field}' {message}{more}"


def parse_document(data: dict, cls: type[D] | None = None, *, where: str = "document") -> D:
    """Validate a decoded JSON object as `cls`, or as the class its `kind` names."""
    if cls is None:
        kind = data.get("kind")
        if kind is None:
            raise LineageError(f"{where}: field 'kind' is missing")
        cls = DOCUMENT_KINDS.get(kind)  # type: ignore[assignment]
        if cls is None:
            raise LineageError(f"{where}: field 'kind' has unknown value {kind!r}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise LineageError(f"{cls.__name__} {where}: {describe_validation_error(exc)}") from None


def load_document(store: ContentStore, cid: str, cls: type[D] | None = None) -> D:
    """Load and validate the document at `cid`; dispatch on `kind` when `cls` is None."""
    return parse_document(store.get_json(cid), cls, where=f"at {cid}")
