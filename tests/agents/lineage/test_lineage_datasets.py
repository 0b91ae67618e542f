"""Datasets from text, folders and JSONL: shards, determinism and input errors."""

from __future__ import annotations

import json

import pytest

from agents.lineage import DatasetError, build_dataset, demo_corpus_path, load_document
from agents.lineage.documents import DatasetManifest
from agents.storage import EmbeddedStore


def _shard_bytes(store, manifest) -> bytes:
    return b"".join(store.cat(s.cid) for s in manifest.shards)


def test_text_file_becomes_byte_shards(store, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("héllo\n" * 1000)
    cid, manifest = build_dataset(store, path, name="a", source="t", license="CC0", shard_size=1000)
    raw = path.read_bytes()
    assert manifest.total_tokens == len(raw) == sum(s.size for s in manifest.shards)
    sizes = [len(raw[i : i + 1000]) for i in range(0, len(raw), 1000)]
    assert [s.size for s in manifest.shards] == sizes and len(sizes) == 7
    assert _shard_bytes(store, manifest) == raw
    assert load_document(store, cid, DatasetManifest) == manifest


def test_folder_and_jsonl_in_a_fixed_order(store, tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("second")
    (folder / "a.txt").write_text("first\n")
    (folder / "sub" / "c.jsonl").write_text(
        json.dumps({"text": "third"}) + "\n\n" + json.dumps({"text": "fourth\n", "id": 4}) + "\n"
    )
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_bytes(b"\x00binary")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"\x00\xff")
    cid, manifest = build_dataset(store, folder, name="c", source="t", license="MIT")
    assert _shard_bytes(store, manifest) == b"first\nsecond\nthird\nfourth\n"
    again = EmbeddedStore(tmp_path / "other", fsync=False)
    assert build_dataset(again, folder, name="c", source="t", license="MIT")[0] == cid


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", b'{"text": "ok"}\n{oops\n', r"bad\.jsonl:2 is not JSON"),
        ("bad.jsonl", b'{"body": "no text"}\n', r"bad\.jsonl:1 has no string field 'text'"),
        ("bin.txt", b"\xff\xfe\x00", r"bin\.txt is not UTF-8"),
        ("nul.txt", b"a\x00b", r"nul\.txt contains NUL"),
        ("empty.txt", b"", "holds no text"),
    ],
)
def test_bad_input_names_the_file(store, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=message):
        build_dataset(store, path, name="x", source="t", license="MIT")


def test_missing_path_and_bad_shard_size(store, tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        build_dataset(store, tmp_path / "nope", name="x", source="t", license="MIT")
    with pytest.raises(DatasetError, match="shard size"):
        build_dataset(store, tmp_path, name="x", source="t", license="MIT", shard_size=0)


def test_demo_corpus_is_python_source_of_a_few_megabytes(tmp_path):
    folder = demo_corpus_path(tmp_path / "corpus")
    files = sorted(p.name for p in folder.iterdir())
    assert "argparse.py" in files and all(f.endswith(".py") for f in files)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert 1_000_000 < size < 4_000_000
    assert demo_corpus_path(tmp_path / "corpus") == folder  # reused, not copied again
