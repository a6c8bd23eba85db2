"""Example reward functions for `localtune train grpo --reward python:samples/grpo/rewards.py:NAME`.

A reward function gets the prompt (the row's last user message), the answer's text and the prompt
row's own JSON object (every field of it), and returns a number, or None for "no verdict" (that
answer is then not trained on, and counted in the reward_missing metric).
"""

import re
import string


def exact_answer(prompt, completion, row):
    """1 when the last number in the answer is the row's "answer", 0 otherwise; no verdict for a
    row without one."""
    if "answer" not in row:
        return None
    numbers = re.findall(r"-?\d+(?:\.\d+)?", completion)
    return 1.0 if numbers and numbers[-1] == str(row["answer"]) else 0.0


def answer_line(prompt, completion, row):
    """1 when the answer ends with a line 'Answer: ...', the format the prompts ask for."""
    lines = [line.strip() for line in completion.strip().splitlines() if line.strip()]
    return 1.0 if lines and lines[-1].startswith("Answer:") else 0.0


# A run of the same 1-4 characters 8+ times in a row ("🌱🌱🌱...", "P.P.P.P..."): a loop that eval's
# word and line counts miss (no words, one line); 8 so that IFEval's "******" divider is not one.
_CHARACTER_RUN = re.compile(r"(\S{1,4}?)\1{7,}")


def no_loops(prompt, completion, row):
    """1 for an answer that does not loop, 0 for one that does: eval's definition (a line or a
    4-word sequence 3+ times, localtune.eval.health) or a run of the same few characters. Beside
    --reward ifeval it makes a looping answer lose to a clean one that follows as many instructions,
    which the truncation penalty alone misses when the loop ends within --max-completion."""
    from localtune.eval.health import loops

    return 0.0 if loops(completion) or _CHARACTER_RUN.search(completion) else 1.0


# Characters an answer in words is made of; anything else (emoji, symbols) counts against it.
_TEXT_PUNCTUATION = set(string.punctuation) | set("“”‘’–—…¿¡«»„·•")


def mostly_words(completion, limit=0.05):
    """True when the answer has a word and at most `limit` of its visible characters are neither
    letters, digits nor punctuation. An emoji string has no capitals, no commas and no forbidden
    word, so IFEval's lowercase, no-comma and forbidden-word checks pass it."""
    visible = [c for c in completion if not c.isspace()]
    if not any(c.isalpha() for c in visible):
        return False
    other = sum(not (c.isalnum() or c in _TEXT_PUNCTUATION) for c in visible)
    return other <= limit * len(visible)


def clean_ifeval(prompt, completion, row):
    """The share of the row's IFEval instructions followed (strict, as --reward ifeval), but 0 for
    an answer that loops (no_loops) or is not mostly words: the hacks a policy finds first when
    rewarded by IFEval's checks alone (an emoji run passes "all lowercase" and "no commas", a
    repeated title passes "include a title"). None (no verdict) for a row without instructions."""
    from localtune.eval.ifeval import check

    ids = row.get("instruction_id_list")
    if not ids:
        return None
    if not no_loops(prompt, completion, row) or not mostly_words(completion):
        return 0.0
    results = check(completion, ids, row.get("kwargs") or [{}] * len(ids), row.get("prompt", prompt))
    return sum(r.strict for r in results) / len(results)


def substantive_ifeval(prompt, completion, row, min_words=10):
    """clean_ifeval, and 0 for an answer too short to do the prompt's task: under `min_words`
    words, unless the row asks for a short answer (IFEval's constrained_response "My answer is
    yes.", or "less than N words": then the floor is half of N at most). A policy rewarded by
    clean_ifeval alone found bare answers that pass a check without the task ("P.P.S." for "end
    with a postscript", "<<Title>>" for "give it a title"), and greedy answers shrank to ~18 tokens."""
    ids = row.get("instruction_id_list") or []
    if "detectable_format:constrained_response" in ids:
        min_words = 0
    for iid, kwargs in zip(ids, row.get("kwargs") or []):
        kwargs = kwargs or {}
        if iid == "length_constraints:number_words" and kwargs.get("relation") == "less than":
            min_words = min(min_words, int(kwargs.get("num_words", 0)) // 2)
    if len(completion.split()) < min_words:
        return 0.0 if ids else None
    return clean_ifeval(prompt, completion, row)
