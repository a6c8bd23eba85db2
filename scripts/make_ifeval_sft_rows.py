"""SFT rows that follow IFEval-schema instructions, made from a model's own answers: each answer is
rewritten, instruction by instruction, into the form the row asks for (lowercase, capitals, quotes,
an end phrase, a postscript, bullets, paragraphs, a title, the request repeated first ...), then
kept only if IFEval's own checkers pass every instruction of the row, the text does not loop and it
still has something to say.

    python scripts/make_ifeval_sft_rows.py --prompts samples/ifeval/synthetic.jsonl \
        --adapter RUN --out rows.jsonl [--n 1] [--temperature 0.7] [--max-tokens 256] [--seed 0]
    python scripts/make_ifeval_sft_rows.py --tasks 600 --per-answer 3 --out rows.jsonl [--adapter RUN]
    python scripts/make_ifeval_sft_rows.py --answers answers.jsonl --out rows.jsonl
        (answers.jsonl as --save-answers writes it: {"row": <prompt row>, "text", "ended"} per line, or
        {"task", "text", "ended"} for --tasks)
    python scripts/make_ifeval_sft_rows.py --answers answers.jsonl --as-tasks --per-answer 2 \
        --first change_case:english_lowercase startend:quotation ... --out format_rows.jsonl

--prompts: the model answers IFEval rows (instructions included) and each answer is fixed for its row.
--tasks: the model answers bare tasks (make_ifeval_prompts.py's templates x topics, none sharing a
topic with valid/held-out), and each answer becomes --per-answer rows: the task with instructions
drawn as make_ifeval_prompts.py draws them (first instruction one this script can do), the answer
rewritten to follow them ("constraint back-translation": many instructed rows from one clean answer).
--as-tasks: answers to IFEval rows (from --prompts or --answers) are taken as answers to each row's
task (its first sentence) and made into rows the same way; --first picks the first instruction (e.g.
only the case, quotation, end-phrase and repeat ones, which SFT needs many rows of to learn).

Why: GRPO and best-of-n SFT only learn from answers the model already samples, and a 135M model
almost never writes a whole answer in lowercase, in capitals or wrapped in quotes by chance (sessions
8-11 in bench/NOTES.md: those rows never moved). The mechanical part of an instruction can be done
by code and checked by IFEval's checkers, the content stays the model's own (the idea of constraint
rewriting with verification, as in AutoIF / Tulu 3's IF data, kept offline and small). Instructions
code cannot do honestly (a language, a keyword a number of times, a forbidden word) are kept only
when the answer already follows them.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, also when loaded from elsewhere
import make_ifeval_prompts as prompt_maker  # noqa: E402  (tasks, topics, instruction wording)

POSTSCRIPTS = ["Thank you for reading.", "Let me know what you think.", "I hope this helps.",
               "Write back soon.", "Have a lovely day."]
PLACEHOLDERS = ["[name]", "[date]", "[address]", "[time]", "[place]", "[phone number]", "[email]"]
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")
MIN_WORDS = 8  # an answer shorter than this says nothing, unless the row asks for a short answer


def sentences(text: str) -> list[str]:
    """The text's sentences, one line of text at a time (a bullet or a heading is one sentence)."""
    out = []
    for line in text.splitlines():
        line = line.strip().lstrip("*#- ").strip()
        if line:
            out.extend(s.strip() for s in SENTENCE_END.split(line) if s.strip())
    return out


def complete(text: str, ended: bool) -> str | None:
    """The answer up to its last full sentence when generation was cut off (None if none ends)."""
    text = text.strip()
    if ended:
        return text
    if text.endswith((".", "!", "?")):
        return text
    cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "), text.rfind(".\n"))
    return text[:cut + 1].strip() if cut > 0 else None


def _groups(items: list[str], n: int) -> list[list[str]] | None:
    """items split into n runs of consecutive items, as even as possible (None if fewer than n)."""
    if len(items) < n:
        return None
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def _title(text: str) -> str:
    first = sentences(text)
    words = re.findall(r"[A-Za-z']+", first[0] if first else text)[:4]
    return " ".join(words).title() or "My Answer"


# One function per instruction: (text, kwargs, prompt, rng) -> the rewritten text, or None when code
# cannot make the text follow it. Instructions missing here pass only if the answer already follows.
def _fix_lowercase(t, kw, p, rng):
    return t.lower()


def _fix_capital(t, kw, p, rng):
    return t.upper()


def _fix_capital_words(t, kw, p, rng):
    n, relation = kw.get("capital_frequency"), kw.get("capital_relation")
    if relation == "less than":
        return re.sub(r"\b[A-Z]{2,}\b", lambda m: m.group(0).capitalize(), t)
    words = [m for m in re.finditer(r"\b[a-z]{4,}\b", t)]
    if len(words) < n:
        return None
    chosen = sorted(rng.sample(words, n), key=lambda m: m.start())
    out, last = [], 0
    for m in chosen:
        out += [t[last:m.start()], m.group(0).upper()]
        last = m.end()
    return "".join(out) + t[last:]


def _fix_repeat(t, kw, p, rng):
    return f"{kw['prompt_to_repeat'].strip()}\n\n{t}"


def _fix_two_responses(t, kw, p, rng):
    halves = _groups(sentences(t), 2)
    return None if halves is None else " ".join(halves[0]) + "\n******\n" + " ".join(halves[1])


def _fix_placeholders(t, kw, p, rng):
    have = len(re.findall(r"\[.*?\]", t))
    need = kw.get("num_placeholders", 1) - have
    if need <= 0:
        return t
    return t + "\n\n" + "\n".join(rng.sample(PLACEHOLDERS, min(need, len(PLACEHOLDERS))))


def _fix_postscript(t, kw, p, rng):
    marker = kw.get("postscript_marker", "P.S.")
    return f"{t}\n\n{marker} {rng.choice(POSTSCRIPTS)}"


def _fix_constrained(t, kw, p, rng):
    first = t.strip().split()[0].lower().strip(",.!") if t.strip() else ""
    verdict = {"yes": "yes", "no": "no"}.get(first, "maybe")
    return f"My answer is {verdict}. {t}"


def _fix_json(t, kw, p, rng):
    return "```json\n" + json.dumps({"answer": t}, ensure_ascii=False, indent=2) + "\n```"


def _fix_sections(t, kw, p, rng):
    groups = _groups(sentences(t), kw.get("num_sections", 2))
    word = kw.get("section_spliter", "Section")
    if groups is None:
        return None
    return "\n\n".join(f"{word} {i}\n{' '.join(g)}" for i, g in enumerate(groups, 1))


def _fix_bullets(t, kw, p, rng):
    items = sentences(t)
    n = kw.get("num_bullets", 3)
    return None if len(items) < n else "\n".join(f"* {s}" for s in items[:n])


def _fix_highlights(t, kw, p, rng):
    n = kw.get("num_highlights", 1)
    items = [s for s in sentences(t) if len(s.split()) >= 3]  # not a list number or a lone word
    if len(items) < n:
        return None
    out = t
    for s in items[:n]:
        if "*" in s or s not in out:
            return None
        out = out.replace(s, f"*{s}*", 1)
    return out


def _fix_title(t, kw, p, rng):
    return f"<<{_title(t)}>>\n\n{t}"


def _fix_paragraphs(t, kw, p, rng):
    groups = _groups(sentences(t), kw.get("num_paragraphs", 2))
    return None if groups is None else "\n\n***\n\n".join(" ".join(g) for g in groups)


def _fix_nth_first_word(t, kw, p, rng):
    groups = _groups(sentences(t), kw.get("num_paragraphs", 2))
    nth, word = kw.get("nth_paragraph", 1), kw.get("first_word", "")
    if groups is None or nth > len(groups) or not word:
        return None
    paragraphs = [" ".join(g) for g in groups]
    target = paragraphs[nth - 1]
    if target.split()[0].strip(".,!?'\"").lower() != word.lower():
        paragraphs[nth - 1] = f"{word.capitalize()}, {target[0].lower()}{target[1:]}"
    return "\n\n".join(paragraphs)


def _fix_sentences(t, kw, p, rng):
    n, relation = kw.get("num_sentences"), kw.get("relation")
    items = sentences(t)
    if relation == "less than":
        return " ".join(items[:max(1, n - 1)])
    return t if len(items) >= n else None


def _fix_words(t, kw, p, rng):
    n, relation = kw.get("num_words"), kw.get("relation")
    if relation != "less than":
        return t if len(t.split()) >= n else None
    out = []
    for s in sentences(t):
        if len(" ".join(out + [s]).split()) >= n:
            break
        out.append(s)
    return " ".join(out) or None


def _fix_no_comma(t, kw, p, rng):
    return t.replace(",", "")


def _fix_end(t, kw, p, rng):
    return f"{t}\n\n{kw['end_phrase']}"


def _fix_quotation(t, kw, p, rng):
    return f'"{t.strip(chr(34))}"'


# The order the fixes run in: what shortens or restructures the text first, what wraps it next, the
# end phrase before the quotes (the end checker strips quotes), letter case last (it keeps the rest).
FIXES = [
    ("length_constraints:number_sentences", _fix_sentences),
    ("length_constraints:number_words", _fix_words),
    ("punctuation:no_comma", _fix_no_comma),
    ("detectable_format:number_highlighted_sections", _fix_highlights),
    ("detectable_format:number_bullet_lists", _fix_bullets),
    ("length_constraints:number_paragraphs", _fix_paragraphs),
    ("length_constraints:nth_paragraph_first_word", _fix_nth_first_word),
    ("detectable_format:multiple_sections", _fix_sections),
    ("combination:two_responses", _fix_two_responses),
    ("detectable_content:number_placeholders", _fix_placeholders),
    ("detectable_format:constrained_response", _fix_constrained),
    ("detectable_format:title", _fix_title),
    ("detectable_content:postscript", _fix_postscript),
    ("startend:end_checker", _fix_end),
    ("detectable_format:json_format", _fix_json),
    ("combination:repeat_prompt", _fix_repeat),
    ("startend:quotation", _fix_quotation),
    ("change_case:capital_word_frequency", _fix_capital_words),
    ("change_case:english_lowercase", _fix_lowercase),
    ("change_case:english_capital", _fix_capital),
]
FIXABLE = {iid for iid, _ in FIXES}


def rewrite(text: str, ids: list[str], kwargs: list[dict], prompt: str, rng: random.Random) -> str | None:
    """The text with each of the row's fixable instructions done in FIXES order (None if one cannot
    be done); instructions without a fix leave the text as it is, for the checkers to judge."""
    by_id = dict(zip(ids, kwargs))
    for iid, fix in FIXES:
        if iid in by_id:
            text = fix(text, {k: v for k, v in (by_id[iid] or {}).items() if v is not None}, prompt, rng)
            if not text or not text.strip():
                return None
    return text.strip()


def asks_for_short(ids: list[str], kwargs: list[dict]) -> bool:
    """True when the row itself allows a very short answer (a word limit, few sentences, a verdict)."""
    for iid, kw in zip(ids, kwargs):
        kw = kw or {}
        if iid in ("length_constraints:number_words", "length_constraints:number_sentences") \
                and kw.get("relation") == "less than":
            return True
        if iid == "detectable_format:constrained_response":
            return True
    return False


def row_from_answer(row: dict, text: str, ended: bool, rng: random.Random):
    """(SFT row or None, why not): the rewritten answer as a chat row when every check passes."""
    from localtune.eval.health import loops
    from localtune.eval.ifeval import check

    ids, kwargs, prompt = row["instruction_id_list"], row["kwargs"], row["prompt"]
    base = complete(text, ended)
    if base is None:
        return None, "cut off mid-sentence"
    if loops(base):
        return None, "loops"
    if len(base.split()) < MIN_WORDS and not asks_for_short(ids, kwargs):
        return None, "too short"
    passed_before = all(r.strict for r in check(base, ids, kwargs, prompt))
    out = base if passed_before else rewrite(base, ids, kwargs, prompt, rng)
    if out is None:
        return None, "no rewrite"
    if not all(r.strict for r in check(out, ids, kwargs, prompt)):
        return None, "checks fail after rewrite"
    row_out = {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": out}]}
    return row_out, "kept as answered" if passed_before else "rewritten"


def bare_tasks(count: int, avoid: list[str], rng: random.Random) -> list[str]:
    """`count` distinct tasks (templates x topics) sharing no topic with the rows of the `avoid` files."""
    avoided = prompt_maker.avoided_topics(avoid)
    tasks = [t.format(t=topic) for t in prompt_maker.TASKS for topic in prompt_maker.TOPICS]
    tasks = [t for t in tasks if not prompt_maker.shares_topic(t, avoided)]
    rng.shuffle(tasks)
    return tasks[:count]


FIRSTS = sorted(FIXABLE - {"detectable_format:constrained_response"})  # that one needs a yes/no question


def instructed_rows(task: str, text: str, ended: bool, per_answer: int, rng: random.Random, key: int,
                    firsts: list[str] = FIRSTS):
    """Up to `per_answer` (SFT row, why) for one answer to a bare task: each a row of the task with
    instructions drawn as make_ifeval_prompts.py does, its first one drawn from `firsts`."""
    out = []
    for i in range(per_answer):
        row = prompt_maker.instructed_row(rng, key + i, task, rng.choice(firsts))
        out.append(row_from_answer(row, text, ended, rng))
    return out


def row_task(prompt: str) -> str:
    """The task of an IFEval-schema prompt: its first sentence (make_ifeval_prompts.py and the
    hand-written rows put the instructions after it)."""
    ends = [i for i in (prompt.find(". "), prompt.find("? ")) if i > 0]
    return prompt[:min(ends) + 1] if ends else prompt


def as_task_answers(answers: list[dict], avoid: list[str]) -> list[dict]:
    """--as-tasks: answers to IFEval rows as answers to the rows' tasks, one per task, none sharing a
    topic with the `avoid` files. A small model mostly ignores the format it was asked for, so its
    answer to "Describe X. Write in capitals." is an answer to "Describe X." that can be re-instructed."""
    avoided = prompt_maker.avoided_topics(avoid)
    out, seen = [], set()
    for answer in answers:
        if "task" in answer:
            task = answer["task"]
        elif isinstance(answer.get("row"), dict) and isinstance(answer["row"].get("prompt"), str):
            task = row_task(answer["row"]["prompt"])
        else:
            continue
        if task not in seen and not prompt_maker.shares_topic(task, avoided):
            seen.add(task)
            out.append({"task": task, "text": answer["text"], "ended": answer["ended"]})
    return out


def generate_answers(messages: list, adapter: str | None, model: str | None, n: int, temperature: float,
                     max_tokens: int, seed: int):
    """The model's answers (localtune.generate.Completion: text, ended, prompt_index) to each chat."""
    from localtune.generate import Sampling, generate_batch
    from localtune.models import load_model, resolve_model

    lm, tokenizer = load_model(resolve_model(model))
    if adapter:
        from localtune.lora import load_adapter

        load_adapter(lm, adapter)
    sampling = Sampling(temperature=temperature, max_tokens=max_tokens, seed=seed).validate()
    return generate_batch(lm, tokenizer, messages, sampling, n=n)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = ap.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompts", help="IFEval-schema rows for the model to answer")
    source.add_argument("--tasks", type=int, help="answer this many bare tasks, each made into --per-answer rows")
    source.add_argument("--answers", help="answers already made (JSONL: row or task, text, ended)")
    ap.add_argument("--per-answer", type=int, default=3, help="rows made from one answer to a bare task")
    ap.add_argument("--avoid", nargs="*", default=["samples/ifeval/valid.jsonl", "samples/ifeval/heldout.jsonl"],
                    help="with --tasks or --as-tasks: IFEval-schema files whose tasks no row may share a topic with")
    ap.add_argument("--as-tasks", action="store_true",
                    help="treat each answer to an IFEval row as an answer to the row's task (its first "
                         "sentence) and make --per-answer instructed rows of it")
    ap.add_argument("--first", nargs="+", metavar="INSTRUCTION", default=FIRSTS,
                    help="for task answers: the first instruction of each row is drawn from these "
                         "(default: every one this script can do), e.g. the format ones a model never samples")
    ap.add_argument("--out", required=True, help="the SFT rows to write (JSONL)")
    ap.add_argument("--save-answers", help="also write every raw answer here (for --answers later)")
    ap.add_argument("--model", help="model dir (default: SmolLM2)")
    ap.add_argument("--adapter", help="a run directory whose adapter answers")
    ap.add_argument("--n", type=int, default=1, help="answers per prompt")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    firsts = sorted(set(a.first))
    unknown = sorted(set(firsts) - set(FIRSTS))
    if unknown:  # before any answer is generated: a typo must not cost minutes of decoding
        print(f"error: --first {' '.join(unknown)}: not an instruction this script can do "
              f"(one of: {', '.join(FIRSTS)})", file=sys.stderr)
        return 2

    from localtune.errors import LocaltuneError
    from localtune.fsutil import atomic_write_text

    try:
        if a.answers:
            answers = []
            for number, line in enumerate(Path(a.answers).read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        answers.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise LocaltuneError(f"{a.answers}:{number}: not JSON ({e.msg})") from None
        elif a.prompts:
            from localtune.data.prompts import read_prompt_set

            raw = [json.loads(line) for line in Path(a.prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
            rows, _ = read_prompt_set(a.prompts)
            made = generate_answers([r.messages for r in rows], a.adapter, a.model, a.n, a.temperature,
                                    a.max_tokens, a.seed)
            answers = [{"row": raw[c.prompt_index], "text": c.text, "ended": bool(c.ended)} for c in made]
        else:
            tasks = bare_tasks(a.tasks, a.avoid, random.Random(a.seed))
            made = generate_answers([[{"role": "user", "content": t}] for t in tasks], a.adapter, a.model, a.n,
                                    a.temperature, a.max_tokens, a.seed)
            answers = [{"task": tasks[c.prompt_index], "text": c.text, "ended": bool(c.ended)} for c in made]
        if a.save_answers and not a.answers:
            atomic_write_text(a.save_answers, "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in answers))
    except (OSError, LocaltuneError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.as_tasks:
        answers = as_task_answers(answers, a.avoid)
    rng = random.Random(a.seed)
    kept, why, seen = [], {}, set()
    for number, answer in enumerate(answers):
        if "task" in answer:
            made = instructed_rows(answer["task"], answer["text"], answer["ended"], a.per_answer, rng,
                                   9001 + number * a.per_answer, firsts)
            keys = [row and row["messages"][0]["content"] for row, _ in made]
        else:
            made = [row_from_answer(answer["row"], answer["text"], answer["ended"], rng)]
            keys = [answer["row"].get("key")]
        for (row, reason), key in zip(made, keys):
            why[reason] = why.get(reason, 0) + 1
            if row is not None and key not in seen:  # one row per prompt: no prompt weighs more than another
                seen.add(key)
                kept.append(row)
    atomic_write_text(a.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
    print(f"{len(answers)} answers: " + ", ".join(f"{k} {v}" for k, v in sorted(why.items()))
          + f"; {len(kept)} rows (one per prompt) -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
