"""The GRPO bench's reward, one rule on both sides: 1 when the reply has an 'Answer:' line.

localtune reads `format_reward` (--reward python:bench/grpo_format_reward.py:format_reward);
mlx-lm-lora reads this file with --reward-functions-file and uses `bench_format` by name.
(Not '<answer>...</answer>': mlx-lm-lora stops decoding at '</answer>', which would make its
answers shorter than localtune's and the comparison unfair.)
"""

import re

ANSWER_LINE = re.compile(r"^\s*Answer:", re.MULTILINE)


def format_reward(prompt, completion, row):
    return 1.0 if ANSWER_LINE.search(completion) else 0.0


try:  # only inside mlx-lm-lora's venv
    from mlx_lm_lora.trainer.grpo_reward_functions import register_reward_function
except ImportError:
    pass
else:
    @register_reward_function()
    def bench_format(prompts, completions, answer, types=None):
        return [format_reward(p, c, None) for p, c in zip(prompts, completions)]
