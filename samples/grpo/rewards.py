"""Example reward functions for `localtune train grpo --reward python:samples/grpo/rewards.py:NAME`.

A reward function gets the prompt (the row's last user message), the answer's text and the prompt
row's own JSON object (every field of it), and returns a number, or None for "no verdict" (that
answer is then not trained on, and counted in the reward_missing metric).
"""

import re


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
