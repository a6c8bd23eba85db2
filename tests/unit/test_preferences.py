"""Preference rows: both formats read to the same pair, problems name file:line, masks cover the
final response only; `data check`/`data stats` understand pair files; the shipped samples hold."""

import json
import re
from pathlib import Path

import pytest
from mlx_lm.utils import load

from localtune.cli import main
from localtune.data import Example, tokenize_example
from localtune.data.preferences import (
    fit_pairs,
    looks_like_preferences,
    preference_stats,
    read_preferences,
    tokenize_pair,
)
from localtune.data.template import hf_tokenizer
from localtune.errors import DataError

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
U = {"role": "user", "content": "Name a colour."}


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    return load(str(tiny_model_dir))[1]


def test_string_and_message_formats_read_to_the_same_pair(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "Name a colour.", "chosen": "Aye! Blue.", "rejected": "blue", "system": "Be Pip."},
        {"chosen": [{"role": "system", "content": "Be Pip."}, U, {"role": "assistant", "content": "Aye! Blue."}],
         "rejected": [{"role": "system", "content": "Be Pip."}, U, {"role": "assistant", "content": "blue"}]},
        {"prompt": [U], "chosen": [{"role": "assistant", "content": "Aye! Blue."}], "rejected": "blue",
         "system": "Be Pip."},
    ])
    assert looks_like_preferences(path)
    ds = read_preferences(path)
    assert ds.problems == [] and ds.format == "preference" and ds.n_rows == 3
    a, b, c = ds.examples
    assert a.prompt == b.prompt == c.prompt == [{"role": "system", "content": "Be Pip."}, U]
    assert a.chosen == b.chosen == c.chosen == "Aye! Blue." and a.rejected == b.rejected == "blue"
    assert (a.format, b.format, c.format) == ("prompt_chosen_rejected", "messages", "messages")
    assert [ex.line for ex in ds.examples] == [1, 2, 3]


def test_bad_rows_are_flagged_with_file_and_line(tmp_path):
    turn = {"role": "assistant", "content": "Aye! Red."}
    path = write_jsonl(tmp_path / "bad.jsonl", [
        {"prompt": "hi", "chosen": "Aye! Hello.", "rejected": "hello"},  # good
        {"prompt": "hi", "chosen": "Aye! Hello."},
        {"prompt": "hi", "chosen": "Same answer.", "rejected": "Same answer. "},
        {"chosen": [U, turn], "rejected": [{"role": "user", "content": "Other?"}, turn]},
        {"chosen": [U, turn], "rejected": [U, turn]},
        {"prompt": "hi", "chosen": 3, "rejected": "x"},
        {"prompt": [U, turn], "chosen": "a", "rejected": "b"},
        "{not json",
        {"chosen": "a", "rejected": "b"},
    ])
    ds = read_preferences(path)
    assert len(ds.examples) == 1
    got = {p.line: p.message for p in ds.problems}
    assert set(got) == {2, 3, 4, 5, 6, 7, 8, 9}
    assert "missing key 'rejected'" in got[2]
    assert "identical" in got[3] and "identical" in got[5]
    assert "share every message but their last" in got[4]
    assert "'chosen' must be a string or a list of messages, got number" in got[6]
    assert "end with a user turn" in got[7]
    assert "invalid JSON" in got[8] and "need a 'prompt'" in got[9]
    assert str(ds.problems[0]).startswith(f"{path}:2: ")
    stats = preference_stats(ds)
    assert stats["identical_pairs"] == {"count": 2, "lines": [3, 5]}
    with pytest.raises(DataError, match="no usable preference rows"):
        read_preferences(write_jsonl(tmp_path / "none.jsonl", [{"prompt": "x", "chosen": "a", "rejected": "a"}]))


def test_masks_cover_the_final_response_only(tokenizer, tmp_path):
    hf = hf_tokenizer(tokenizer)
    earlier = {"role": "assistant", "content": "Aye! Green was it."}
    path = write_jsonl(tmp_path / "p.jsonl", [
        {"prompt": "Name a colour.", "chosen": "Aye! Blue.", "rejected": "blue"},
        {"prompt": [U, earlier, {"role": "user", "content": "Another?"}], "chosen": "Aye! Red.", "rejected": "red"},
    ])
    single, multi = [tokenize_pair(ex, tokenizer) for ex in read_preferences(path).examples]

    def trained(ids, mask):
        return hf.decode([t for t, m in zip(ids, mask) if m])

    assert trained(single.chosen_ids, single.chosen_mask) == "Aye! Blue.<|im_end|>"
    assert trained(single.rejected_ids, single.rejected_mask) == "blue<|im_end|>"
    # Same mask as SFT's on a one-turn conversation.
    sft = tokenize_example(Example([U, {"role": "assistant", "content": "Aye! Blue."}], None, "x", 1, "messages"),
                           tokenizer)
    assert sft.ids == single.chosen_ids and sft.mask == single.chosen_mask
    # Multi-turn prompt: the earlier assistant turn is context, not scored.
    assert trained(multi.chosen_ids, multi.chosen_mask) == "Aye! Red.<|im_end|>"
    assert trained(multi.rejected_ids, multi.rejected_mask) == "red<|im_end|>"
    start = multi.chosen_mask.index(True)
    assert multi.chosen_ids[:start] == multi.rejected_ids[:start]  # the shared prompt
    assert "Green was it." in hf.decode(multi.chosen_ids[:start])

    # Truncation keeps both sides together; a response cut away entirely drops the pair.
    prompt_len = single.chosen_mask.index(True)
    kept, idx, counts = fit_pairs([single, multi], prompt_len + 3)
    assert idx == [0] and counts == {"truncated": 2, "dropped": 1, "identical": 0}
    assert len(kept[0].chosen_ids) == len(kept[0].rejected_ids) == prompt_len + 3
    kept, idx, counts = fit_pairs([single, multi], prompt_len + 3, overlong="drop")
    assert kept == [] and counts == {"truncated": 0, "dropped": 2, "identical": 0}


def test_data_check_and_stats_understand_pair_files(tmp_path, tiny_model_dir, capsys):
    path = write_jsonl(tmp_path / "pairs.jsonl", [
        {"prompt": "hi", "chosen": "Aye! Hello.", "rejected": "hello"},
        {"prompt": "hi", "chosen": "Same.", "rejected": "Same."},
    ])
    assert main(["data", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:2: chosen and rejected are identical" in out
    assert f"{path}: preference format, 2 rows, 1 usable, 1 problem" in out
    assert main(["data", "stats", str(path), "--model", str(tiny_model_dir), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["usable_rows"] == 1 and s["identical_pairs"]["lines"] == [2]
    assert s["chosen_tokens"]["max"] == len("Aye! Hello.") + 1  # a token per byte, plus <|im_end|>
    # An SFT file is still an SFT file.
    sft = write_jsonl(tmp_path / "sft.jsonl", [{"messages": [U, {"role": "assistant", "content": "Blue."}]}])
    assert main(["data", "check", str(sft)]) == 0
    assert "messages format, 1 rows, 1 usable" in capsys.readouterr().out


def test_sample_preference_sets(capsys):
    sft_prompts = set()
    for name in ("train.jsonl", "valid.jsonl"):
        for line in (SAMPLES / "sft" / name).read_text().splitlines():
            sft_prompts |= {m["content"].strip() for m in json.loads(line)["messages"] if m["role"] == "user"}
    def ayes(text):
        return len(re.findall(r"(?i)\baye\b", text))

    def pip_shaped(text):  # one greeting, one sign-off, nothing after it
        return text.startswith("Aye! ") and text.endswith("\nFair winds! ⛵") and ayes(text) == 1 \
            and text.count("Fair winds!") == 1

    seen, kinds = set(), {}
    for name, low, high in (("train.jsonl", 110, 160), ("valid.jsonl", 25, 40)):
        ds = read_preferences(SAMPLES / "dpo" / name)
        assert ds.problems == [] and low <= len(ds.examples) <= high, (name, len(ds.examples))
        assert {ex.format for ex in ds.examples} == {"prompt_chosen_rejected", "messages"}
        for ex in ds.examples:
            where = f"{name}:{ex.line}"
            assert pip_shaped(ex.chosen), where
            kind = "content" if pip_shaped(ex.rejected) else "unstyled" if ayes(ex.rejected) == 0 else "shape"
            kinds[name, kind] = kinds.get((name, kind), 0) + 1
            if name == "train.jsonl":  # DPO learns the difference: fewer "Aye"s rejected = "say Aye more"
                assert ayes(ex.rejected) >= ayes(ex.chosen), where
            user = ex.prompt[-1]["content"].strip()
            assert user not in sft_prompts, where  # prompts differ from the SFT samples
            assert user not in seen, where  # and from each other (train and valid disjoint)
            seen.add(user)
    # Rejected answers are worse one way: worse content in Pip's shape, or Pip's shape broken (a
    # second greeting, repeats, no end); valid also keeps unstyled ones (does the style generalise?).
    assert kinds["train.jsonl", "content"] >= 60 and kinds["train.jsonl", "shape"] >= 40, kinds
    assert ("train.jsonl", "unstyled") not in kinds and kinds["valid.jsonl", "unstyled"] >= 10, kinds
    assert main(["data", "check", str(SAMPLES / "dpo" / "train.jsonl"), str(SAMPLES / "dpo" / "valid.jsonl")]) == 0
    capsys.readouterr()
