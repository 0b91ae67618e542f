"""The lineage graph of a checkpoint or round record, back to its dataset.

`lineage_tree` follows the CID links of the documents (checkpoint → round
records → spec → dataset → shards, and parent checkpoints) and returns a
graph of plain nodes; `render_rich`, `lineage_json` and `lineage_dot` turn
it into a Rich tree, JSON or Graphviz dot. A content-addressed graph cannot
have cycles, but it shares nodes (every round names the same spec), so each
node is visited once and later mentions point back to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rich.tree import Tree

from agents.lineage.documents import (
    CheckpointManifest,
    DatasetManifest,
    Document,
    JobSpec,
    RoundRecord,
)
from agents.lineage.store import LineageError, parse_document
from agents.storage.base import MAX_JSON_BYTES, ContentStore
from agents.storage.errors import ContentNotFound, IntegrityError, StoreError
from agents.storage.multiformats import parse_cid
from agents.storage.unixfs import file_size

# Shards beyond this many are summarised in the tree and the dot graph.
SHOWN_SHARDS = 8


@dataclass
class LineageNode:
    """One CID in the lineage: a document, a data file, or content the store lacks."""

    cid: str
    kind: str  # dataset | job-spec | checkpoint | round-record | file | missing | corrupt
    label: str
    details: dict[str, Any] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)  # (relation, child CID)


@dataclass
class LineageGraph:
    """Every node reachable from `root`, keyed by CID."""

    root: str
    nodes: dict[str, LineageNode]


def _short(cid: str) -> str:
    return cid if len(cid) <= 16 else f"{cid[:8]}…{cid[-6:]}"


# `_load`'s answer for content whose bytes do not match its CID.
CORRUPT = "corrupt"


def _load(store: ContentStore, cid: str) -> Document | int | str | None:
    """The document at `cid`, the byte size of a plain file, CORRUPT, or None if absent.

    Only the first block is read to tell JSON from binary (a safetensors file
    starts with its header length, never with `{`), so a large checkpoint
    is never read whole.
    """
    try:
        stream = store.cat_stream(cid)
        first = next(stream, b"")
    except ContentNotFound:
        return None
    except IntegrityError:
        return CORRUPT
    except StoreError:
        return -1  # a directory or other non-file content
    if not first.lstrip().startswith(b"{"):
        return file_size(parse_cid(cid), store.get_block)
    parts, total = [first], len(first)
    try:
        for piece in stream:
            total += len(piece)
            if total > MAX_JSON_BYTES:
                return total
            parts.append(piece)
    except IntegrityError:
        return CORRUPT
    except ContentNotFound:
        return None
    try:
        data = json.loads(b"".join(parts))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return total
    if not isinstance(data, dict):
        return total
    return parse_document(data, where=f"at {cid}")


def _describe(cid: str, doc: Document) -> LineageNode:
    if isinstance(doc, CheckpointManifest):
        node = LineageNode(
            cid,
            "checkpoint",
            f"checkpoint job {doc.job_id} round {doc.round}",
            {"job_id": doc.job_id, "round": doc.round, "stages": len(doc.stages)},
        )
        node.edges.append(("spec", doc.spec))
        if doc.parent:
            node.edges.append(("parent", doc.parent))
        node.edges += [("round_record", rr) for rr in doc.round_records]
        node.edges += [(f"stage {s.stage}", s.cid) for s in doc.stages]
    elif isinstance(doc, RoundRecord):
        node = LineageNode(
            cid,
            "round-record",
            f"round {doc.round} stage {doc.stage} by {doc.provider}",
            {
                "job_id": doc.job_id,
                "round": doc.round,
                "stage": doc.stage,
                "provider": doc.provider,
                "trace_root": doc.trace_root,
                "leaves": len(doc.leaves),
            },
        )
        node.edges.append(("spec", doc.spec))
        if doc.parent_record:  # the same stage's previous round: lineage across rounds
            node.edges.append(("parent_record", doc.parent_record))
        if doc.parent_checkpoint:
            node.edges.append(("parent_checkpoint", doc.parent_checkpoint))
        node.edges.append(("new_checkpoint", doc.new_checkpoint))
        node.edges += [("data_shard", shard) for shard in doc.data_shards]
    elif isinstance(doc, JobSpec):
        node = LineageNode(
            cid,
            "job-spec",
            f"job spec {doc.name!r} ({doc.num_stages} stages)",
            {"name": doc.name, "num_stages": doc.num_stages, "seed": doc.determinism.seed},
        )
        node.edges.append(("dataset", doc.dataset))
        if doc.init_checkpoint:
            node.edges.append(("init_checkpoint", doc.init_checkpoint))
    elif isinstance(doc, DatasetManifest):
        node = LineageNode(
            cid,
            "dataset",
            f"dataset {doc.name!r}: {len(doc.shards)} shards, {doc.total_tokens} tokens",
            {
                "name": doc.name,
                "source": doc.source,
                "license": doc.license,
                "shards": len(doc.shards),
                "total_tokens": doc.total_tokens,
            },
        )
        if doc.parent:
            node.edges.append(("parent", doc.parent))
        node.edges += [("shard", shard.cid) for shard in doc.shards]
    else:  # a registered kind this module does not know how to expand
        node = LineageNode(cid, "document", type(doc).__name__)
    return node


def lineage_tree(store: ContentStore, cid: str, *, max_nodes: int = 10_000) -> LineageGraph:
    """Follow a document's CID links to build its lineage graph.

    Shard and weight files are listed but never read; documents the store
    lacks become `missing` nodes, documents whose bytes do not match their CID
    `corrupt` ones. The root must be a lineage document.
    """
    root = str(parse_cid(cid))
    loaded = _load(store, root)
    if not isinstance(loaded, Document):
        if loaded is None:
            raise ContentNotFound(f"{root} is not in the store")
        if loaded == CORRUPT:
            raise LineageError(f"{root} is corrupt in the store: its bytes do not match the CID")
        raise LineageError(f"{root} is not a lineage document")
    nodes: dict[str, LineageNode] = {root: _describe(root, loaded)}
    queue = [root]
    leaf_relations = {"shard", "data_shard"}
    while queue:
        current = nodes[queue.pop(0)]
        for relation, child in current.edges:
            if child in nodes:
                continue
            if len(nodes) >= max_nodes:
                raise LineageError(f"lineage of {root} has more than {max_nodes} nodes")
            if relation in leaf_relations or relation.startswith("stage "):
                nodes[child] = LineageNode(child, "file", relation.replace("_", " "))
                continue
            loaded = _load(store, child)
            if loaded is None:
                nodes[child] = LineageNode(child, "missing", f"{relation} (not in store)")
            elif loaded == CORRUPT:
                nodes[child] = LineageNode(
                    child, "corrupt", f"{relation} (corrupt: bytes do not match the CID)"
                )
            elif isinstance(loaded, Document):
                nodes[child] = _describe(child, loaded)
                queue.append(child)
            else:
                details = {"bytes": loaded} if loaded >= 0 else {}
                nodes[child] = LineageNode(child, "file", relation.replace("_", " "), details)
    return LineageGraph(root, nodes)


# --- renderers ----------------------------------------------------------------------------


def render_rich(graph: LineageGraph) -> Tree:
    """A Rich tree; a node already shown is printed once more as a back-reference."""
    styles = {
        "checkpoint": "bold magenta",
        "round-record": "cyan",
        "job-spec": "yellow",
        "dataset": "green",
        "file": "dim",
        "missing": "bold red",
        "corrupt": "bold red reverse",
    }
    shown: set[str] = set()

    def label(node: LineageNode, relation: str | None) -> str:
        style = styles.get(node.kind, "")
        prefix = f"[dim]{relation}:[/] " if relation else ""
        size = f" [dim]({node.details['bytes']} B)[/]" if "bytes" in node.details else ""
        return f"{prefix}[{style}]{node.label}[/]{size} [dim]{node.cid}[/]"

    def add(parent: Tree, node: LineageNode) -> None:
        shown.add(node.cid)
        shards = 0
        for relation, child_cid in node.edges:
            child = graph.nodes.get(child_cid)
            if child is None:
                continue
            if relation == "shard":
                shards += 1
                if shards > SHOWN_SHARDS:
                    continue
            if child_cid in shown and child.edges:
                parent.add(f"[dim]{relation}: ↑ {child.label} {_short(child_cid)} (above)[/]")
                continue
            branch = parent.add(label(child, relation))
            add(branch, child)
        if shards > SHOWN_SHARDS:
            parent.add(f"[dim]… {shards - SHOWN_SHARDS} more shards[/]")

    root = graph.nodes[graph.root]
    tree = Tree(label(root, None))
    add(tree, root)
    return tree


def graph_dict(graph: LineageGraph) -> dict[str, Any]:
    """The graph as plain JSON-ready data: root, nodes and labelled edges."""
    return {
        "root": graph.root,
        "nodes": [
            {"cid": n.cid, "kind": n.kind, "label": n.label, "details": n.details}
            for n in graph.nodes.values()
        ],
        "edges": [
            {"from": n.cid, "to": child, "relation": relation}
            for n in graph.nodes.values()
            for relation, child in n.edges
        ],
    }


def lineage_json(graph: LineageGraph) -> str:
    """`graph_dict` as indented JSON text."""
    return json.dumps(graph_dict(graph), indent=2, sort_keys=True)


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def graph_dot(graph: LineageGraph) -> str:
    """Graphviz dot: one box per document, shards beyond a few summarised in one node."""
    shapes = {"file": "note", "missing": "octagon", "corrupt": "doubleoctagon"}
    shown_edges: list[tuple[str, str, str]] = []
    summaries: list[tuple[str, int]] = []
    for node in graph.nodes.values():
        shards = 0
        for relation, child in node.edges:
            if child not in graph.nodes:
                continue
            if relation == "shard":
                shards += 1
                if shards > SHOWN_SHARDS:
                    continue
            shown_edges.append((node.cid, child, relation))
        if shards > SHOWN_SHARDS:
            summaries.append((node.cid, shards - SHOWN_SHARDS))
    visible = {graph.root} | {child for _, child, _ in shown_edges}
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for node in graph.nodes.values():
        if node.cid not in visible:
            continue
        text = f"{node.kind}\n{node.label}\n{_short(node.cid)}"
        shape = shapes.get(node.kind, "box")
        lines.append(f"  {_dot_quote(node.cid)} [label={_dot_quote(text)}, shape={shape}];")
    for parent, child, relation in shown_edges:
        lines.append(
            f"  {_dot_quote(parent)} -> {_dot_quote(child)} [label={_dot_quote(relation)}];"
        )
    for cid, count in summaries:
        summary = f"{cid}#more-shards"
        lines.append(f"  {_dot_quote(summary)} [label={_dot_quote(f'… {count} more shards')}];")
        lines.append(f"  {_dot_quote(cid)} -> {_dot_quote(summary)} [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def lineage_dot(store: ContentStore, cid: str) -> str:
    """The lineage of `cid` as Graphviz dot text (what the demo writes to lineage.dot)."""
    return graph_dot(lineage_tree(store, cid))
