"""IFEval's verifiable instructions, checked with IFEval's own definitions.

The 25 checkers are Google's (Apache-2.0), as packaged by if-verifiable; this module only drives them
the way IFEval's evaluation_lib does, because if-verifiable's own driver differs from it on two
points that change the numbers: it skips an unknown instruction id and returns no results for an
empty answer (IFEval counts both as not followed; here an unknown id is refused before generating).
- strict: the answer, not blank, passes the checker;
- loose: any of 8 variants passes (the answer; without its first line, last line or both; each of
  those with '*' removed).
Prompt-level = every instruction of the row followed; instruction-level = the share of instructions.
Offline: langdetect carries its profiles; NLTK's Punkt model comes from punkt_data.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from localtune.errors import LocaltuneError

FAMILIES = ("change_case", "combination", "detectable_content", "detectable_format", "keywords", "language",
            "length_constraints", "punctuation", "startend")


@dataclass(frozen=True)
class InstructionResult:
    instruction_id: str
    strict: bool
    loose: bool


def family(instruction_id: str) -> str:
    """IFEval's group of an instruction: the part before ':' (startend:end_checker -> startend)."""
    return instruction_id.split(":", 1)[0]


def _quiet_langdetect(record: logging.LogRecord) -> bool:
    """False (drop) for if-verifiable's "Unable to detect language" records."""
    return not ("if_verifiable" in record.pathname and isinstance(record.msg, str)
                and record.msg.startswith("Unable to detect language"))


@functools.lru_cache(maxsize=1)
def registry() -> dict:
    """instruction id -> checker class. Imports the checkers (a few seconds) on first use."""
    try:
        import langdetect
        from if_verifiable.common import get_loose_transformations  # noqa: F401  (checked here)
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
    except ImportError as e:
        raise LocaltuneError(f"IFEval checks need the package if-verifiable ({e}); install localtune's "
                             "dependencies: pip install -e .") from None
    from localtune.eval.punkt_data import ensure_punkt

    ensure_punkt()
    # IFEval's language check logs "Unable to detect language..." with logging.error on the root
    # logger when langdetect finds no words (then the instruction counts as followed, IFEval's
    # rule): a line on the user's terminal in the middle of a progress bar, about nothing wrong.
    logging.getLogger().addFilter(_quiet_langdetect)
    # langdetect draws at random; a fixed seed gives the same language for the same text every run.
    langdetect.DetectorFactory.seed = 0
    return dict(INSTRUCTION_DICT)


def _checker(instruction_id: str, kwargs: dict, prompt: str):
    cls = registry()[instruction_id]
    checker = cls(instruction_id)
    checker.build_description(**kwargs)
    args = checker.get_instruction_args()
    if args and "prompt" in args:  # repeat_prompt compares against the prompt itself
        checker.build_description(prompt=prompt)
    return checker


def row_problems(instruction_ids: list[str], kwargs: list[dict], prompt: str) -> list[str]:
    """Why a row's instructions cannot be checked: unknown ids, kwargs a checker refuses."""
    known = registry()
    problems = []
    for iid, kw in zip(instruction_ids, kwargs):
        if iid not in known:
            problems.append(f"unknown instruction {iid!r} (IFEval's are: {', '.join(sorted(known))})")
            continue
        try:
            checker = _checker(iid, kw, prompt)
        except Exception as e:  # TypeError for an unknown kwarg, ValueError for a bad value
            problems.append(f"{iid}: bad kwargs {kw}: {e}")
            continue
        # A kwarg left out is drawn at random by the checker: the score would change run to run.
        missing = [k for k in checker.get_instruction_args_keys() or [] if k not in kw and k != "prompt"]
        if missing:
            problems.append(f"{iid}: kwargs {', '.join(missing)} missing (the checker would pick them at random)")
    return problems


def check(response: str, instruction_ids: list[str], kwargs: list[dict], prompt: str) -> list[InstructionResult]:
    """One result per instruction, in order."""
    from if_verifiable.common import get_loose_transformations

    variants = get_loose_transformations(response)
    results = []
    for iid, kw in zip(instruction_ids, kwargs):
        checker = _checker(iid, kw, prompt)
        strict = bool(response.strip()) and bool(checker.check_following(response))
        loose = strict or any(v.strip() and checker.check_following(v) for v in variants[1:])
        results.append(InstructionResult(iid, strict, bool(loose)))
    return results
