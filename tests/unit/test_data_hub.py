"""Hub datasets (--data owner/name) from a stand-in HF cache, offline; --columns renaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localtune.data import read_dataset
from localtune.data.columns import parse_columns
from localtune.data.hub import VALID_SPLITS, is_hub_dataset, parse_hub_spec, resolve_dataset
from localtune.data.preferences import read_preferences
from localtune.errors import DataError

SHA = "0123456789abcdef0123456789abcdef01234567"
ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"question": f"What is {i} + {i}?", "answer": f"It is {2 * i}.", "id": i} for i in range(6)]
COLS = "question=instruction,answer=output"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """Private HF cache + converted-datasets dir; hub offline so nothing reaches the network."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOCALTUNE_DATASETS", str(tmp_path / "datasets"))
    monkeypatch.chdir(tmp_path)  # so no relative 'owner/name' path exists by accident
    return tmp_path


def fake_dataset(cache: Path, repo_id: str, files: dict[str, str | bytes], ref: str = "main") -> Path:
    """The HF cache layout snapshot_download(repo_type='dataset', local_files_only=True) resolves."""
    repo = cache / f"datasets--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / ref).write_text(SHA)
    snap = repo / "snapshots" / SHA
    for name, content in files.items():
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            (snap / name).write_bytes(content)
        else:
            (snap / name).write_text(content)
    return snap


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_spec_parsing():
    assert parse_hub_spec("owner/name") == ("owner/name", None, None)
    assert parse_hub_spec("owner/name:test") == ("owner/name", None, "test")
    assert parse_hub_spec("owner/name@v1.0") == ("owner/name", "v1.0", None)
    assert parse_hub_spec("owner/name@abc:validation") == ("owner/name", "abc", "validation")
    for path in ["data/train.jsonl", "./a/b", "/abs/x", "~/x/y", "a/b/c", "plain", "a/b.parquet"]:
        assert parse_hub_spec(path) is None, path


def test_local_paths_pass_through(hub):
    (hub / "owner").mkdir()
    (hub / "owner" / "name").write_text(jsonl(ROWS))  # an existing local path wins over an id
    assert not is_hub_dataset("owner/name")
    assert resolve_dataset("owner/name") == Path("owner/name")
    assert resolve_dataset("missing/train.jsonl") == Path("missing/train.jsonl")


def test_cached_dataset_resolves_offline(hub):
    snap = fake_dataset(hub / "hf", "owner/name", {"train.jsonl": jsonl(ROWS[:4]),
                                                   "test.jsonl": jsonl(ROWS[4:]),
                                                   "dataset_info.json": "{}"})
    events = []
    assert resolve_dataset("owner/name", on_event=events.append) == snap / "train.jsonl"
    assert any(e.get("cached") for e in events) and events[-1]["path"] == str(snap / "train.jsonl")
    assert resolve_dataset("owner/name", split=VALID_SPLITS) == snap / "test.jsonl"
    assert resolve_dataset("owner/name:test") == snap / "test.jsonl"
    assert resolve_dataset(f"owner/name@{SHA}") == snap / "train.jsonl"
    with pytest.raises(DataError, match=r"no file for split 'nope'.*train\.jsonl"):
        resolve_dataset("owner/name:nope")


def test_sharded_split_is_combined_once(hub):
    fake_dataset(hub / "hf", "owner/shards", {
        "data/train-00000-of-00002.jsonl": jsonl(ROWS[:3]),
        "data/train-00001-of-00002.jsonl": jsonl(ROWS[3:]).rstrip("\n"),
        "data/validation-00000-of-00001.json": json.dumps(ROWS[:2]),
    })
    out = resolve_dataset("owner/shards")
    assert out == hub / "datasets" / "owner--shards" / SHA / "train.jsonl"
    assert [json.loads(x) for x in out.read_text().splitlines()] == ROWS
    mtime = out.stat().st_mtime_ns
    assert resolve_dataset("owner/shards") == out and out.stat().st_mtime_ns == mtime  # reused
    valid = resolve_dataset("owner/shards", split=VALID_SPLITS)
    assert valid.name == "validation-00000-of-00001.json"
    assert len(read_dataset(valid, columns=COLS).examples) == 2


def test_one_file_dataset_is_its_train_split(hub):
    snap = fake_dataset(hub / "hf", "owner/one", {"data.jsonl": jsonl(ROWS)})
    assert resolve_dataset("owner/one") == snap / "data.jsonl"
    with pytest.raises(DataError, match="no file for split 'validation'"):
        resolve_dataset("owner/one", split=VALID_SPLITS)


def test_missing_dataset_offline_is_quick_and_clear(hub):
    start = time.monotonic()
    with pytest.raises(DataError, match=r"cannot download dataset owner/missing: offline \(HF_HUB_OFFLINE"
                                        r" is set\).*local file"):
        resolve_dataset("owner/missing")
    assert time.monotonic() - start < 5


def test_columns_make_a_custom_dataset_alpaca(hub, tiny_model_dir):
    from localtune.models import load_tokenizer_only
    from localtune.train.prepare import load_rows

    fake_dataset(hub / "hf", "owner/custom", {"train.jsonl": jsonl(ROWS)})
    path = resolve_dataset("owner/custom")
    with pytest.raises(DataError, match="cannot tell the dataset format"):
        read_dataset(path)
    ds = read_dataset(path, columns=COLS)
    assert ds.format == "alpaca" and len(ds.examples) == len(ROWS) and not ds.problems
    assert ds.examples[1].messages[-1] == {"role": "assistant", "content": "It is 2."}
    events = []
    tok = load_tokenizer_only(str(tiny_model_dir))
    rows, _ = load_rows(path, tok, format=None, train_on_prompt=False, max_seq_len=256,
                           overlong="truncate", on_event=events.append, columns=COLS)
    assert len(rows) == len(ROWS) and all(any(mask) for _, mask in rows)
    assert events[-1]["event"] == "data" and events[-1]["format"] == "alpaca"


def test_columns_rename_preference_keys(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(jsonl([{"q": "Hi?", "good": "Hello!", "bad": "Go away."}]))
    ds = read_preferences(p, columns="q=prompt,good=chosen,bad=rejected")
    assert ds.examples[0].chosen == "Hello!" and ds.examples[0].prompt[-1]["content"] == "Hi?"


@pytest.mark.parametrize("spec, match", [
    ("question", r"bad entry 'question': expected source=key"),
    ("a=b=c", r"bad entry 'a=b=c'"),
    ("a=b,,c=d", r"empty entry"),
    ("=output", r"bad entry '=output'"),
    ("a=x,b=x", r"two columns are mapped to 'x'"),
    ("a=x,a=y", r"column 'a' is mapped twice"),
])
def test_bad_columns_spec(spec, match):
    with pytest.raises(DataError, match=match):
        parse_columns(spec)


def test_columns_naming_an_absent_column(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(jsonl(ROWS))
    with pytest.raises(DataError, match=r"'questoin' that no row has; rows have keys \['answer', 'id', "
                                        r"'question'\]"):
        read_dataset(p, columns="questoin=instruction,answer=output")


def test_swapped_columns():
    from localtune.data.columns import rename_row

    assert rename_row({"a": 1, "b": 2, "c": 3}, {"a": "b", "b": "a"}) == {"c": 3, "b": 1, "a": 2}
    assert rename_row({"q": 1, "instruction": 0}, {"q": "instruction"}) == {"instruction": 1}


def test_parquet_split(hub):
    import pyarrow as pa  # the test setup installs the parquet extra
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(ROWS)
    snap = fake_dataset(hub / "hf", "owner/pq", {})
    (snap / "data").mkdir(parents=True)
    pq.write_table(table, snap / "data" / "train-00000-of-00001.parquet")
    out = resolve_dataset("owner/pq")
    assert out.suffix == ".jsonl" and [json.loads(x) for x in out.read_text().splitlines()] == ROWS
    assert read_dataset(out, columns=COLS).format == "alpaca"


def test_parquet_without_pyarrow_is_clear(hub, monkeypatch):
    fake_dataset(hub / "hf", "owner/pq2", {"train.parquet": b"PAR1 not really"})
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DataError, match=r"Parquet.*pip install pyarrow"):
        resolve_dataset("owner/pq2")
    assert not list((hub / "datasets").rglob("*.jsonl"))  # no half-written file left


def test_cli_data_check_hub_id(hub):
    fake_dataset(hub / "hf", "owner/custom", {"train.jsonl": jsonl(ROWS)})
    env = {**os.environ, "HF_HUB_CACHE": str(hub / "hf"), "HF_HUB_OFFLINE": "1",
           "LOCALTUNE_DATASETS": str(hub / "datasets"), "PYTHONPATH": str(ROOT)}

    def check(*args):
        return subprocess.run([sys.executable, "-m", "localtune", "data", "check", *args], cwd=hub,
                              env=env, capture_output=True, text=True, timeout=120)

    out = check("owner/custom", "--columns", COLS)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"owner/custom: alpaca format, {len(ROWS)} rows, {len(ROWS)} usable, 0 problems" in out.stdout
    out = check("owner/missing")
    assert out.returncode == 1 and "cannot download dataset owner/missing: offline" in out.stdout
    out = check("owner/custom", "--columns", "question")
    assert out.returncode == 1 and "bad entry 'question'" in out.stdout
