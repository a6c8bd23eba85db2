"""scripts/make_ifeval_sft_rows.py: a model's answer rewritten into the form its row asks for, kept
only when IFEval's own checkers pass every instruction; what code cannot do honestly (a language, a
keyword count) is kept only when the answer already follows it."""

import json
import random

from localtune.eval.ifeval import check
from script_modules import ROOT, load_script

ANSWER = ("Gardens are quiet places where people grow food and flowers. In the morning, the light is soft "
          "and the air is cool, and birds sing. A garden needs water, sun and care. Many families share "
          "the work together. Children learn patience when they wait for seeds to grow. At the end of the "
          "day, the garden is a calm place to rest.")


def script():
    return load_script("scripts/make_ifeval_sft_rows.py")


def rows_by_instruction():
    """One single-instruction row of every type, from the sample sets (real prompts and kwargs); for
    a count, one that asks for less (code can shorten an answer, not lengthen it)."""
    out = {}
    for name in ("synthetic", "train"):
        for line in (ROOT / "samples/ifeval" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if len(row["instruction_id_list"]) == 1 and row["kwargs"][0].get("relation") != "at least":
                out.setdefault(row["instruction_id_list"][0], row)
    return out


def test_every_fixable_instruction_is_followed_after_the_rewrite():
    module = script()
    rows = rows_by_instruction()
    assert module.FIXABLE <= set(rows)
    for iid in sorted(module.FIXABLE):
        row = rows[iid]
        before = check(ANSWER, row["instruction_id_list"], row["kwargs"], row["prompt"])[0].strict
        out, why = module.row_from_answer(row, ANSWER, True, random.Random(0))
        assert out is not None, (iid, why)
        assert why == ("kept as answered" if before else "rewritten"), iid
        text = out["messages"][1]["content"]
        assert check(text, row["instruction_id_list"], row["kwargs"], row["prompt"])[0].strict, iid
        assert out["messages"][0] == {"role": "user", "content": row["prompt"]}
    # A rewrite changes what it must and keeps the model's words.
    lower = module.row_from_answer(rows["change_case:english_lowercase"], ANSWER, True, random.Random(0))[0]
    assert lower["messages"][1]["content"] == ANSWER.lower()


def test_what_code_cannot_do_is_kept_only_when_already_followed():
    module = script()
    french = {"key": 1, "prompt": "Describe a garden. Your ENTIRE response should be in French language, no other language is allowed.",
              "instruction_id_list": ["language:response_language"], "kwargs": [{"language": "fr"}]}
    assert module.row_from_answer(french, ANSWER, True, random.Random(0)) == (None, "checks fail after rewrite")
    answer = ("Le jardin est un endroit calme ou les familles cultivent des fleurs et des legumes. Le matin, "
              "la lumiere est douce et les oiseaux chantent.")
    out, why = module.row_from_answer(french, answer, True, random.Random(0))
    assert why == "kept as answered" and out["messages"][1]["content"] == answer


def test_cut_off_looping_and_empty_answers():
    module = script()
    row = {"key": 2, "prompt": "Describe a garden. Use no commas.", "instruction_id_list": ["punctuation:no_comma"],
           "kwargs": [{}]}
    out, why = module.row_from_answer(row, ANSWER + " Then the sun goes down and the", False, random.Random(0))
    assert why == "rewritten" and out["messages"][1]["content"] == ANSWER.replace(",", "")  # cut at the last sentence
    assert module.row_from_answer(row, "and the and the and", False, random.Random(0)) == (None, "cut off mid-sentence")
    looping = " ".join(["The garden is green."] * 12)
    assert module.row_from_answer(row, looping, True, random.Random(0)) == (None, "loops")
    assert module.row_from_answer(row, "Green.", True, random.Random(0)) == (None, "too short")


def test_main_writes_one_row_per_prompt_and_names_a_bad_line(tmp_path, capsys):
    module = script()
    row = {"key": 7, "prompt": "Describe a garden. Wrap your entire response with double quotation marks.",
           "instruction_id_list": ["startend:quotation"], "kwargs": [{}]}
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"row": row, "text": t, "ended": True}) + "\n"
                               for t in (ANSWER, ANSWER.upper(), "Hi.")))
    assert module.main(["--answers", str(answers), "--out", str(tmp_path / "rows.jsonl")]) == 0
    kept = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["messages"][1]["content"] for r in kept] == [f'"{ANSWER}"']
    said = capsys.readouterr().out
    assert "rewritten 2" in said and "too short 1" in said and "1 rows (one per prompt)" in said
    answers.write_text(json.dumps({"row": row, "text": ANSWER, "ended": True}) + "\n{not json\n")
    assert module.main(["--answers", str(answers), "--out", str(tmp_path / "again.jsonl")]) == 2
    assert f"{answers}:2: not JSON" in capsys.readouterr().err
    assert not (tmp_path / "again.jsonl").exists()


def test_bare_task_answers_become_several_instructed_rows_that_pass(tmp_path, capsys):
    """--tasks: one clean answer to a bare task, made into rows of that task with instructions drawn as
    make_ifeval_prompts.py draws them; every kept row passes IFEval's checkers for its own prompt."""
    module = script()
    tasks = module.bare_tasks(2000, [str(ROOT / "samples/ifeval/valid.jsonl"), str(ROOT / "samples/ifeval/heldout.jsonl")],
                              random.Random(0))
    assert len(tasks) == len(set(tasks)) > 500
    topic = load_script("scripts/make_ifeval_prompts.py").task_topic
    judged = [topic(json.loads(line)["prompt"]) for name in ("valid", "heldout")
              for line in (ROOT / "samples/ifeval" / f"{name}.jsonl").read_text().splitlines()]
    assert all(len(topic(t) & j) < 2 for t in tasks for j in judged)

    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"task": "Describe a kitchen garden.", "text": ANSWER, "ended": True}) + "\n"
                               for _ in range(10)))
    assert module.main(["--answers", str(answers), "--per-answer", "3", "--out", str(tmp_path / "rows.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert 15 <= len(rows) <= 30 and len({r["messages"][0]["content"] for r in rows}) == len(rows)
    said = capsys.readouterr().out
    assert said.startswith("10 answers: ") and f"{len(rows)} rows" in said
    rewritten = 0
    for r in rows:
        prompt, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        assert prompt.startswith("Describe a kitchen garden. ")
        rewritten += answer != ANSWER
    assert rewritten >= len(rows) // 2  # most instructions needed the answer changed


def test_answers_to_rows_become_rows_of_their_task_with_the_first_instructions_asked(tmp_path, capsys):
    """--as-tasks --first: an answer to an IFEval row is an answer to the row's task (its first
    sentence); the rows made of it start with one of the --first instructions and pass the checkers;
    a task sharing a topic with the judged sets is left out; an unknown --first is an error."""
    module = script()
    assert module.row_task("Describe a kitchen garden. Use only capital letters.") == "Describe a kitchen garden."
    assert module.row_task("Why do cats purr? Answer in lowercase.") == "Why do cats purr?"
    heldout_prompt = json.loads((ROOT / "samples/ifeval/heldout.jsonl").read_text().splitlines()[0])["prompt"]
    rows_in = [{"key": k, "prompt": p, "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
               for k, p in enumerate(["Describe a kitchen garden. Do not use any commas.",
                                      "Describe a kitchen garden. Wrap it in quotes.", heldout_prompt])]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"row": r, "text": ANSWER, "ended": True}) + "\n" for r in rows_in))
    firsts = ["change_case:english_capital", "startend:quotation"]
    out = tmp_path / "rows.jsonl"
    assert module.main(["--answers", str(answers), "--as-tasks", "--per-answer", "6", "--first", *firsts,
                        "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert 2 <= len(rows) <= 6 and capsys.readouterr().out.startswith("1 answers: ")  # one task, the judged one left out
    for r in rows:
        prompt, answer = r["messages"][0]["content"], r["messages"][1]["content"]
        assert prompt.startswith("Describe a kitchen garden. ")
        in_capitals, in_quotes = answer == answer.upper(), answer.startswith('"') and answer.endswith('"')
        assert in_capitals or in_quotes, answer  # the first instruction is one of --first, and was done
    assert module.main(["--answers", str(answers), "--as-tasks", "--first", "keywords:existence",
                        "--out", str(tmp_path / "bad.jsonl")]) == 2
    assert "--first keywords:existence: not an instruction this script can do" in capsys.readouterr().err
    assert not (tmp_path / "bad.jsonl").exists()
