"""Malformed dataset files, fuzzed: `data check` (read_dataset / read_preferences and the CLI's
printing) and the trainer's loaders never show a traceback. Only DataError (naming the file) may
escape; every problem reads `file:line: reason` with a line inside the file; planted good rows
still come through; over-long rows are truncated or dropped and counted."""

import argparse
import io
import json
import re
import sys
from contextlib import redirect_stdout

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from localtune.data import dataset_stats, read_dataset
from localtune.data.preferences import load_pairs, read_preferences
from localtune.errors import DataError
from localtune.train.prepare import load_rows

FAST = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
SLOWER = settings(FAST, max_examples=400)  # these also tokenize every usable row


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


GOOD = [
    {"messages": msgs(("user", "hello"), ("assistant", "hi there"))},
    {"messages": msgs(("system", "be brief"), ("user", "2+2?"), ("assistant", "4"))},
    {"messages": msgs(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d é ✓ 😀"))},
]
GOOD_PREF = [
    {"prompt": "pick", "chosen": "good", "rejected": "bad"},
    {"chosen": msgs(("user", "q"), ("assistant", "yes")), "rejected": msgs(("user", "q"), ("assistant", "no"))},
]
# Valid JSON that is not a usable row: wrong types, missing keys, empty strings, roles out of
# order, other formats, escaped lone surrogates, huge numbers.
BAD_VALUES = [
    1, None, "text", [], True, {}, [1, 2], {"messages": 5}, {"messages": []}, {"messages": "hi"},
    {"messages": [1, 2]}, {"messages": [{"role": "user"}]}, {"messages": [{"content": "x"}]},
    {"messages": [{"role": 1, "content": "x"}, {"role": "assistant", "content": "y"}]},
    {"messages": [{"role": "user", "content": ["x"]}, {"role": "assistant", "content": "y"}]},
    {"messages": msgs(("user", ""), ("assistant", "y"))}, {"messages": msgs(("user", "x"), ("assistant", "  "))},
    {"messages": msgs(("assistant", "x"), ("user", "y"))}, {"messages": msgs(("user", "x"), ("user", "y"))},
    {"messages": msgs(("user", "x"), ("system", "s"), ("assistant", "y"))},
    {"messages": msgs(("user", "x"))}, {"messages": msgs(("tool", "x"), ("assistant", "y"))},
    {"messages": msgs(("user", "x"), ("assistant", "y"), ("user", "z"))},
    {"messages": msgs(("us\ner", "x"), ("assistant", "y"))}, {"conversations": [{"from": "a\nb", "value": "x"}]},
    {"instruction": "x"}, {"instruction": "", "output": "y"}, {"instruction": 3, "output": "y"},
    {"text": ""}, {"text": None}, {"prompt": "p"}, {"prompt": "p", "completion": ["c"]},
    {"conversations": [{"from": "alien", "value": "x"}]}, {"conversations": [{"from": "human"}]},
    {"chosen": "a"}, {"rejected": "b"}, {"chosen": "a", "rejected": "a", "prompt": "p"},
    {"chosen": 1, "rejected": 2}, {"chosen": "a", "rejected": "b"}, {"prompt": [], "chosen": "a", "rejected": "b"},
    {"chosen": msgs(("user", "q"), ("assistant", "a")), "rejected": msgs(("user", "r"), ("assistant", "b"))},
    {"prompt": "p", "chosen": msgs(("user", "x")), "rejected": "b"}, {"system": 5, "prompt": "p", "chosen": "a", "rejected": "b"},
]
RAW_BAD = [
    '{"messages": [{"role": "user", "content": "x"}', "{", "}", "[", "]", "not json", '{"a": 1} trailing',
    '{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "y"}]}',
    '{"messages": [{"role": "us\\udfffer", "content": "x"}, {"role": "assistant", "content": "y"}]}',
    '{"chosen": "\\ud83d", "rejected": "b", "prompt": "p"}', '{"messages": ' + "9" * 5000 + "}",
    "[" * 3000 + "]" * 3000, '{"messages": ' + "[" * 3000 + "]" * 3000 + "}", "NaN", '{"text": Infinity}',
    "\x00\x01\x02", "\ufeff{}", '{"messages": [{"role": "user", "content": "x"}]}\x00',
]
BAD_BYTES = [b"\xff", b"\xfe\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]


def jsonl_line(draw, kind, good_rows, prefs):
    """One row's bytes (without the line ending) and, for planted good rows, the row."""
    if kind == "good":
        row = draw(st.sampled_from(GOOD_PREF if prefs else GOOD))
        return json.dumps(row, ensure_ascii=draw(st.booleans())).encode(), row
    if kind == "value":
        return json.dumps(draw(st.sampled_from(BAD_VALUES))).encode(), None
    if kind == "raw":
        return draw(st.sampled_from(RAW_BAD)).encode("utf-8", "surrogatepass"), None
    if kind == "bytes":  # a good row with invalid UTF-8 planted inside a string
        text = json.dumps(draw(st.sampled_from(GOOD))).encode()
        cut = draw(st.integers(0, len(text)))
        return text[:cut] + draw(st.sampled_from(BAD_BYTES)) + text[cut:], None
    if kind == "huge":
        n = draw(st.sampled_from([3000, 20000]))
        row = {"messages": msgs(("user", "long " * (n // 5)), ("assistant", "ok"))}
        return json.dumps(row).encode(), None  # usable but over any small --max-seq-len
    if kind == "text":
        return draw(st.text(max_size=40)).encode("utf-8", "surrogatepass"), None
    return draw(st.binary(max_size=40)), None


@st.composite
def dataset_file(draw, prefs=False):
    """(bytes, planted good rows as {line: row}, is_array). Mixes every kind of damage."""
    kinds = draw(st.lists(st.sampled_from(["good", "good", "value", "raw", "bytes", "huge", "text", "binary"]),
                          max_size=12))
    as_array = draw(st.integers(0, 4)) == 0
    crlf = draw(st.booleans())
    bom = draw(st.booleans())
    sep = b"\r\n" if crlf else b"\n"
    out = bytearray(b"\xef\xbb\xbf" if bom else b"")
    planted = {}
    if as_array:  # only valid JSON elements: a broken element ends the array read (tested below)
        out += b"[" + sep
        for i, kind in enumerate(kinds):
            kind = kind if kind in ("good", "value") else "value"
            line = out.count(b"\n") + 1
            data, row = jsonl_line(draw, kind, planted, prefs)
            out += data + (b"," if i < len(kinds) - 1 else b"") + sep
            if row is not None:
                planted[line] = row
        out += b"]" + sep
    else:
        rows = [jsonl_line(draw, kind, planted, prefs) for kind in kinds]
        rows = [(data.replace(b"\n", b" "), row) for data, row in rows]  # keep lines countable
        if b"".join(d + b"\n" for d, _ in rows).decode("utf-8", "replace").lstrip().startswith("["):
            # A file starting with '[' is read as one JSON array (documented): keep this one JSONL.
            good = draw(st.sampled_from(GOOD_PREF if prefs else GOOD))
            rows.insert(0, (json.dumps(good).encode(), good))
        for data, row in rows:
            line = out.count(b"\n") + 1
            out += data + sep
            if row is not None:
                planted[line] = row
        if draw(st.booleans()) and out.endswith(sep):
            out = out[: -len(sep)]  # no newline at the end of the file
    return bytes(out), planted, as_array


def problem_re(path):
    return re.compile(rf"^{re.escape(str(path))}:(\d+): \S")


def check_problems(path, problems, data: bytes):
    nlines = data.count(b"\n") + 1
    pat = problem_re(path)
    for p in problems:
        m = pat.match(str(p))
        assert m, str(p)
        assert 1 <= int(m.group(1)) <= nlines, (str(p), nlines)


def run_check_cli(path, fmt=None):
    """`localtune data check` in-process, printed through a strict UTF-8 stdout."""
    from localtune.cli.data_cmd import run_check

    buf = io.BytesIO()
    out = io.TextIOWrapper(buf, encoding="utf-8", errors="strict", newline="\n")
    with redirect_stdout(out):
        rc = run_check(argparse.Namespace(files=[str(path)], format=fmt, columns=None))
    out.flush()
    return rc, buf.getvalue().decode("utf-8")


def check_cli_output(path, rc, text, data):
    pat = problem_re(path)
    nlines = data.count(b"\n") + 1
    lines = text.splitlines()
    assert rc in (0, 1)
    assert lines, "data check printed nothing"
    if lines[0].startswith("error: "):
        assert lines[0].startswith(f"error: {path}: ") and rc == 1, text
        rest = lines[1:]
    else:
        assert re.match(rf"^{re.escape(str(path))}: \w+ format, \d+ rows, \d+ usable, \d+ problems?$", lines[-1]), text
        rest = lines[:-1]
    for line in rest:
        m = pat.match(line.strip())
        if m is None:  # only the "... and N more problems" tail of an error may differ
            assert re.match(r"^\s+\.\.\. and \d+ more problems$", line), line
        else:
            assert 1 <= int(m.group(1)) <= nlines, line


@FAST
@given(dataset_file())
def test_fuzzed_sft_files_read_and_check_cleanly(fuzz_dir, case):
    data, planted, as_array = case
    path = fuzz_dir / "f-data.jsonl"  # one path, rewritten per example: no mkdir each time
    path.write_bytes(data)
    for fmt in (None, "messages"):
        try:
            ds = read_dataset(path, format=fmt)
        except DataError as e:
            assert str(e).startswith(f"{path}: "), str(e)
            check_problems(path, [line.strip() for line in str(e).splitlines()[1:] if not line.strip().startswith("...")], data)
            assert not planted or fmt is None, ("good rows lost", planted, str(e))
            continue
        check_problems(path, ds.problems, data)
        assert len(ds.examples) + len(ds.problems) == ds.n_rows
        if ds.format == "messages":  # planted rows come through, at their lines, unchanged
            got = {ex.line: ex.messages for ex in ds.examples}
            for line, row in planted.items():
                assert got.get(line) == row["messages"], (line, got.keys())
    rc, text = run_check_cli(path)
    check_cli_output(path, rc, text, data)


@FAST
@given(dataset_file(prefs=True))
def test_fuzzed_preference_files_read_and_check_cleanly(fuzz_dir, case):
    data, planted, _ = case
    path = fuzz_dir / "p-pairs.jsonl"  # one path, rewritten per example: no mkdir each time
    path.write_bytes(data)
    try:
        ds = read_preferences(path)
    except DataError as e:
        assert str(e).startswith(f"{path}: ") and not planted, str(e)
    else:
        check_problems(path, ds.problems, data)
        got = {ex.line for ex in ds.examples}
        assert set(planted) <= got, (planted.keys(), got)
    rc, text = run_check_cli(path, "preference")
    check_cli_output(path, rc, text, data)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from localtune.models import load_tokenizer_only

    return load_tokenizer_only(tiny_model_dir)


@SLOWER
@given(dataset_file(), st.sampled_from(["truncate", "drop"]))
def test_fuzzed_files_through_the_trainers_loader(tokenizer, fuzz_dir, case, overlong):
    data, planted, _ = case
    path = fuzz_dir / "l-train.jsonl"  # one path, rewritten per example: no mkdir each time
    path.write_bytes(data)
    events = []
    max_len = 256  # a "huge" row is thousands of tokens; planted good rows are < 100
    try:
        rows, examples = load_rows(str(path), tokenizer, format=None, train_on_prompt=False, max_seq_len=max_len,
                                   overlong=overlong, on_event=events.append)
    except DataError as e:
        assert str(e).startswith(f"{path}: "), str(e)
        return
    check_problems(path, [e["message"] for e in events if e["event"] == "data_problem"], data)
    (info,) = [e for e in events if e["event"] == "data"]
    assert all(len(ids) <= max_len for ids, _ in rows)
    assert info["usable"] == len(rows) == len(examples)
    assert info["usable"] + info["dropped"] + info["problems"] == info["rows"]
    if overlong == "drop":
        assert info["truncated"] == 0
    if info["format"] == "messages":
        assert set(planted) <= {ex.line for ex in examples}


@SLOWER
@given(dataset_file(prefs=True), st.sampled_from(["truncate", "drop"]))
def test_fuzzed_preference_files_through_the_dpo_loader(tokenizer, fuzz_dir, case, overlong):
    data, planted, _ = case
    path = fuzz_dir / "q-pairs.jsonl"  # one path, rewritten per example: no mkdir each time
    path.write_bytes(data)
    try:
        pairs = load_pairs(str(path), tokenizer, max_seq_len=256, overlong=overlong)
    except DataError as e:
        assert str(e).startswith(f"{path}: "), str(e)
        return
    assert all(len(p.chosen_ids) <= 256 and len(p.rejected_ids) <= 256 for p in pairs)
    assert set(planted) <= {p.line for p in pairs}


def test_broken_array_keeps_rows_before_the_break(tmp_path):
    good = json.dumps(GOOD[0])
    path = tmp_path / "a.json"
    path.write_text(f"[\n{good},\n{good},\n{{oops\n,{good}]\n")
    ds = read_dataset(path)
    assert [ex.line for ex in ds.examples] == [2, 3]
    assert [str(p) for p in ds.problems] == [f"{path}:4: invalid JSON: Expecting property name enclosed in "
                                             "double quotes at column 2; the rest of the array was not read"]


def test_overlong_rows_counted_truncate_vs_drop_and_in_stats(tokenizer, tmp_path):
    path = tmp_path / "long.jsonl"
    long_row = {"messages": msgs(("user", "word " * 200), ("assistant", "ok"))}
    rows = [GOOD[0], long_row, GOOD[1], long_row, long_row]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = {}
    for mode in ("truncate", "drop"):
        events = []
        kept, _ = load_rows(str(path), tokenizer, format=None, train_on_prompt=True, max_seq_len=64,
                            overlong=mode, on_event=events.append)
        (info,) = [e for e in events if e["event"] == "data"]
        counts[mode] = (info["truncated"], info["dropped"], len(kept))
    assert counts == {"truncate": (3, 0, 5), "drop": (0, 3, 2)}
    stats = dataset_stats(read_dataset(path), tokenizer, max_seq_len=64)
    assert stats["over_max_seq_len"] == {"count": 3, "lines": [2, 4, 5]}


def test_dataset_file_is_read_never_executed(tmp_path):
    marker = tmp_path / "executed"
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    with pytest.raises(DataError, match=re.escape(str(evil))):
        read_dataset(evil)
    rc, text = run_check_cli(evil)
    assert rc == 1 and not marker.exists()
    assert sys.modules.get("evil") is None
