"""The base of every stored document and the string types they share.

Documents are strict (unknown or missing fields are rejected) and serialise
to canonical JSON (sorted keys, no whitespace), so the same document always
has the same CID.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

_CID_RE = re.compile(r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,})$")
_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_ADDR_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _check(regex: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"not a {what}: {value!r}")
        return value

    return check


CID = Annotated[str, AfterValidator(_check(_CID_RE, "CID"))]
# Checked in pydantic's core (no Python call per field): a round record has 11 per leaf
# and thousands of leaves, and every validator parses each record it audits.
Hash32 = Annotated[str, StringConstraints(pattern=_HASH_RE.pattern)]
Address = Annotated[str, AfterValidator(_check(_ADDR_RE, "0x-prefixed address"))]


class Document(BaseModel):
    """Base of every stored document: strict, immutable, canonical JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical_json(self) -> bytes:
        """The exact bytes stored on IPFS (sorted keys, compact, UTF-8)."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()
