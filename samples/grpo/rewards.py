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
