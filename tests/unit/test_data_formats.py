"""Reading dataset files: every format, JSONL and JSON arrays, and exact `file:line: reason`s."""

import json

import pytest

from localtune.data import read_dataset
from localtune.errors import DataError

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def problems(ds):
    return [str(p) for p in ds.problems]


@pytest.mark.parametrize(
    "row, fmt, messages",
    [
        (CHAT, "messages", CHAT["messages"]),
        (
            {"messages": [{"role": "system", "content": "S"}] + CHAT["messages"]},
            "messages",
            [{"role": "system", "content": "S"}] + CHAT["messages"],
        ),
        (
            {"instruction": "do", "input": "this", "output": "done", "system": "S"},
            "alpaca",
            [{"role": "system", "content": "S"}, {"role": "user", "content": "do\n\nthis"},
             {"role": "assistant", "content": "done"}],
        ),
        (
            {"instruction": "do", "input": "", "output": "done"},
            "alpaca",
            [{"role": "user", "content": "do"}, {"role": "assistant", "content": "done"}],
        ),
        (
            {"prompt": "p", "completion": "c"},
            "prompt_completion",
            [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}],
        ),
        (
            {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "q"},
                               {"from": "gpt", "value": "a"}]},
            "sharegpt",
            [{"role": "system", "content": "S"}, {"role": "user", "content": "q"},
             {"role": "assistant", "content": "a"}],
        ),
    ],
)
def test_each_chat_format_parses(tmp_path, row, fmt, messages):
    ds = read_dataset(write_jsonl(tmp_path / "d.jsonl", [row, row]))
    assert ds.format == fmt and ds.n_rows == 2 and not ds.problems
    ex = ds.examples[1]
    assert ex.messages == messages and ex.text is None
    assert (ex.source, ex.line, ex.format) == (str(tmp_path / "d.jsonl"), 2, fmt)


def test_text_format(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "t.jsonl", [{"text": "hello"}, {"text": "x", "id": 3}]))
    assert ds.format == "text"
    assert [(e.text, e.messages, e.line) for e in ds.examples] == [("hello", None, 1), ("x", None, 2)]


def test_bad_rows_are_reported_with_lines_and_skipped(tmp_path):
    p = tmp_path / "bad.jsonl"
    rows = [
        CHAT,                                                                       # 1
        "",                                                                         # 2 blank
        '{"messages": [',                                                           # 3
        [1, 2],                                                                     # 4
        {"messages": "hi"},                                                         # 5
        {"messages": []},                                                           # 6
        {"messages": [{"role": "user", "content": "q"}]},                           # 7
        {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "t"}]},  # 8
        {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},  # 9
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                      {"role": "user", "content": "q2"}]},                          # 10
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "a"}]},  # 11
        {"messages": [{"role": "user", "content": ["x"]}, {"role": "assistant", "content": "a"}]},  # 12
        {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},   # 13
        {"prompt": "p", "completion": "c"},                                         # 14
        {"foo": 1},                                                                 # 15
        {"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"},
                      {"role": "assistant", "content": "a"}]},                      # 16
        CHAT,                                                                       # 17
    ]
    ds = read_dataset(write_jsonl(p, rows))
    assert [e.line for e in ds.examples] == [1, 17]
    assert ds.n_rows == 16
    assert problems(ds) == [
        f"{p}:3: invalid JSON: Expecting value at column 15",
        f"{p}:4: expected a JSON object, got list",
        f"{p}:5: 'messages' must be a list, got string",
        f"{p}:6: 'messages' is empty",
        f"{p}:7: no assistant turn",
        f"{p}:8: message 2: unsupported role 'tool' (supported: system, user, assistant)",
        f"{p}:9: message 1: expected role 'user', got 'assistant'",
        f"{p}:10: conversation must end with an assistant turn, the last is 'user'",
        f"{p}:11: message 1: empty content",
        f"{p}:12: message 1: 'content' must be a string, got list",
        f"{p}:13: message 1: missing 'content'",
        f"{p}:14: row is prompt_completion format but the file is messages format "
        "(expected a 'messages' list)",
        f"{p}:15: missing key 'messages'",
        f"{p}:16: message 2: expected role 'assistant', got 'system' (system is only allowed first)",
    ]


def test_alpaca_prompt_sharegpt_text_problems(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [
        {"instruction": "i", "output": "o"},
        {"instruction": "i"},
        {"instruction": "", "output": "o"},
        {"instruction": "i", "input": 3, "output": "o"},
    ])
    assert problems(read_dataset(a)) == [
        f"{a}:2: missing key 'output'", f"{a}:3: 'instruction' is empty",
        f"{a}:4: 'input' must be a string, got number",
    ]
    s = write_jsonl(tmp_path / "s.jsonl", [
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "function_call", "value": "f"}]},
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt"}]},
    ])
    assert problems(read_dataset(s)) == [
        f"{s}:2: turn 2: unsupported 'from' value 'function_call' (supported: human, user, gpt, "
        "assistant, system)",
        f"{s}:3: turn 2: missing 'value'",
    ]
    t = write_jsonl(tmp_path / "t.jsonl", [{"text": "ok"}, {"text": ""}, {"text": None}])
    assert problems(read_dataset(t)) == [f"{t}:2: 'text' is empty",
                                         f"{t}:3: 'text' must be a string, got null"]


def test_bom_crlf_blank_lines_and_invalid_utf8(tmp_path):
    p = tmp_path / "crlf.jsonl"
    good = json.dumps({"text": "a"}).encode()
    p.write_bytes(b"\xef\xbb\xbf" + good + b"\r\n\r\n  \r\n" + b'{"text": "\xff"}\r\n' + good + b"\r\n")
    ds = read_dataset(p)
    assert [e.line for e in ds.examples] == [1, 5]
    assert problems(ds) == [f"{p}:4: invalid UTF-8 (byte 0xff at character 11)"]


def test_json_array_lines(tmp_path):
    p = tmp_path / "arr.json"
    p.write_text(
        "\ufeff[\n"
        '  {"prompt": "p1", "completion": "c1"},\n'    # 2
        "  {\n"                                          # 3
        '    "prompt": "p2",\n'
        '    "completion": ""\n'
        "  },\n"
        "  7,\n"                                         # 7
        '  {"prompt": "p3",\n'                           # 8
        '   "completion": "c3"}\n'
        "]\n", encoding="utf-8")
    ds = read_dataset(p)
    assert ds.format == "prompt_completion" and ds.n_rows == 4
    assert [e.line for e in ds.examples] == [2, 8]
    assert problems(ds) == [f"{p}:3: 'completion' is empty", f"{p}:7: expected a JSON object, got number"]


def test_broken_json_array_keeps_rows_before_the_error(tmp_path):
    p = tmp_path / "broken.json"
    p.write_text('[\n{"text": "a"},\n{"text": "b" oops},\n{"text": "c"}\n]\n')
    ds = read_dataset(p)
    assert [e.text for e in ds.examples] == ["a"]
    assert problems(ds) == [f"{p}:3: invalid JSON: Expecting ',' delimiter at column 14; "
                            "the rest of the array was not read"]


def test_detection_by_majority_and_forced_format(tmp_path):
    p = write_jsonl(tmp_path / "m.jsonl", [{"text": "t"}, CHAT, CHAT])
    ds = read_dataset(p)
    assert ds.format == "messages"
    assert problems(ds) == [f"{p}:1: row is text format but the file is messages format "
                            "(expected a 'messages' list)"]
    forced = read_dataset(p, format="text")
    assert forced.format == "text" and [e.line for e in forced.examples] == [1]
    pc = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "p", "completion": "c"}])
    assert read_dataset(pc, format="prompt-completion").format == "prompt_completion"
    with pytest.raises(DataError, match="unknown dataset format 'chat'; valid formats: messages, "
                                        "alpaca, prompt_completion, text, sharegpt"):
        read_dataset(p, format="chat")


def test_unusable_files_raise(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    with pytest.raises(DataError, match="no rows"):
        read_dataset(empty)
    (tmp_path / "arr.json").write_text("[]")
    with pytest.raises(DataError, match="no rows"):
        read_dataset(tmp_path / "arr.json")
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "missing.jsonl")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"messages": []}, "{"])
    with pytest.raises(DataError) as e:
        read_dataset(bad)
    msg = str(e.value)
    assert msg.startswith(f"{bad}: no usable rows (messages format, 2 problems)")
    assert f"{bad}:1: 'messages' is empty" in msg and f"{bad}:2: invalid JSON" in msg
    unknown = write_jsonl(tmp_path / "u.jsonl", [{"foo": 1}])
    with pytest.raises(DataError, match=r"cannot tell the dataset format: rows have keys \['foo'\]"):
        read_dataset(unknown)
