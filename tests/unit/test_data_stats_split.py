"""Dataset stats on a known file, and train/valid splitting."""

import json

import pytest
from mlx_lm.utils import load_tokenizer

from localtune.data import dataset_stats, read_dataset, split_dataset, tokenize_example
from localtune.errors import DataError
from tiny import write_tiny_tokenizer


def row(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    write_tiny_tokenizer(path)
    return load_tokenizer(path)


def test_stats_numbers(tmp_path, tokenizer):
    p = write_jsonl(tmp_path / "d.jsonl", [
        row("q", "a"),                                                   # 1
        row("qq", "aaaa"),                                               # 2
        row("q", "a"),                                                   # 3 duplicate of 1
        "not json",                                                      # 4
        {"messages": row("x", "y")["messages"] + row("x2", "y2")["messages"]},  # 5: two turns
        row("q", "a"),                                                   # 6 duplicate of 1
    ])
    ds = read_dataset(p)
    s = dataset_stats(ds)
    assert (s["rows"], s["usable_rows"], s["problems"], s["format"]) == (6, 5, 1, "messages")
    assert s["formats"] == {"messages": 5}
    assert s["turns"] == {"assistant_turns": 6, "max_per_row": 2, "multi_turn_rows": 1}
    assert s["duplicates"] == {"count": 2, "lines": [3, 6], "same_as": [1, 1]}
    assert "tokens" not in s

    s = dataset_stats(ds, tokenizer, max_seq_len=30)
    # "<|im_start|>user\n" = 1+5 tokens, q, "<|im_end|>\n" = 2, "<|im_start|>assistant\n" = 1+10,
    # a, "<|im_end|>\n" = 2: a 1-char q/a row is 23 tokens; longer q/a add their bytes.
    lengths = sorted([23, 23 + 1 + 3, 23, 46 + 2, 23])
    assert s["tokens"] == {"p50": 23, "p90": 48, "p99": 48, "max": 48,
                           "mean": round(sum(lengths) / 5, 1), "total": sum(lengths)}
    # Trained: the answer bytes + <|im_end|> per turn.
    assert s["trained_tokens"]["total"] == 2 + 5 + 2 + (2 + 3) + 2
    assert s["over_max_seq_len"] == {"count": 1, "lines": [5]}
    assert [len(tokenize_example(e, tokenizer).ids) for e in ds.examples] == [23, 27, 23, 48, 23]


def test_split_is_deterministic_disjoint_and_verbatim(tmp_path):
    rows = [json.dumps({"text": f"row {i}"}, indent=None, separators=(",", ":")) for i in range(40)]
    src = tmp_path / "all.jsonl"
    src.write_text("\n".join(rows[:20]) + "\n\n{broken\n" + "\n".join(rows[20:]) + "\n")
    before = src.read_bytes()
    t1, v1 = split_dataset(src, tmp_path / "a", valid_fraction=0.25, seed=3)
    t2, v2 = split_dataset(src, tmp_path / "b", valid_fraction=0.25, seed=3)
    t3, v3 = split_dataset(src, tmp_path / "c", valid_fraction=0.25, seed=4)
    assert src.read_bytes() == before
    assert (t1.name, v1.name) == ("train.jsonl", "valid.jsonl")
    train, valid = t1.read_text().splitlines(), v1.read_text().splitlines()
    assert (len(train), len(valid)) == (30, 10)
    assert not set(train) & set(valid) and sorted(train + valid) == sorted(rows)
    assert train == [r for r in rows if r in train]  # input order kept
    assert (t2.read_text(), v2.read_text()) == (t1.read_text(), v1.read_text())
    assert v3.read_text() != v1.read_text()
    assert read_dataset(t1).format == "text" and not read_dataset(v1).problems


def test_split_json_array_and_guards(tmp_path):
    src = tmp_path / "arr.json"
    src.write_text('[\n {"prompt": "p1",\n  "completion": "c1"},\n {"prompt": "p2", "completion": "c2"}\n]')
    train, valid = split_dataset(src, tmp_path / "out", valid_fraction=0.5)
    lines = sorted(train.read_text().splitlines() + valid.read_text().splitlines())
    assert lines == ['{"prompt": "p1", "completion": "c1"}', '{"prompt": "p2", "completion": "c2"}']
    own = write_jsonl(tmp_path / "train.jsonl", [{"text": "a"}, {"text": "b"}])
    with pytest.raises(DataError, match="overwrite its own input"):
        split_dataset(own, tmp_path)
    with pytest.raises(DataError, match="between 0 and 1"):
        split_dataset(src, tmp_path / "x", valid_fraction=1.0)
    one = write_jsonl(tmp_path / "one.jsonl", [{"text": "a"}])
    with pytest.raises(DataError, match="need at least 2"):
        split_dataset(one, tmp_path / "y")
