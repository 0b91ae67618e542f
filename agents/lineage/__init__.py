"""Lineage documents: the pydantic models Tessera stores as JSON on IPFS.

Each document names its parents by CID, so any checkpoint can be traced back
to the rounds, providers and data that made it. Documents are strict: unknown
or missing fields are rejected, and they serialise to canonical JSON (sorted
keys, no whitespace), so the same document always has the same CID.
"""

from __future__ import annotations

from agents.lineage.datasets import DatasetError, build_dataset, demo_corpus_path
from agents.lineage.store import (
    DOCUMENT_KINDS,
    LineageError,
    load_document,
    parse_document,
    save_document,
)
from agents.lineage.tree import (
    LineageGraph,
    LineageNode,
    graph_dict,
    graph_dot,
    lineage_dot,
    lineage_json,
    lineage_tree,
    render_rich,
)

__all__ = [
    "DOCUMENT_KINDS",
    "DatasetError",
    "LineageError",
    "LineageGraph",
    "LineageNode",
    "build_dataset",
    "demo_corpus_path",
    "graph_dict",
    "graph_dot",
    "lineage_dot",
    "lineage_json",
    "lineage_tree",
    "load_document",
    "parse_document",
    "render_rich",
    "save_document",
]
