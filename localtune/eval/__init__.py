"""Generation-based evaluation: IFEval instructions, answer health, user checks, side by side.

    rows = read_ifeval("samples/ifeval/heldout.jsonl")           # localtune.data.prompts
    evals = compare(model, tokenizer, rows, variants_for(["adapters/sft-1"]), Sampling(max_tokens=128))
    write_results(default_out_dir("adapters/sft-1"), evals, meta)

The engine returns results and emits events; `localtune eval` (cli/eval_cmd.py) prints them.
"""

from localtune.eval.checks import UserCheck, load_checks, run_checks
from localtune.eval.files import (ANSWERS_FILE, SUMMARY_FILE, check_out_dir, default_out_dir, prepare_out_dir,
                                  read_summary, summary_json, write_results)
from localtune.eval.health import loops, repeated_line, repeated_ngram
from localtune.eval.ifeval import FAMILIES, InstructionResult, family
from localtune.eval.results import Answer, ModelEval
from localtune.eval.runner import Scorer, check_rows, compare, evaluate, judge
from localtune.eval.variants import (BASE, AdapterSwitch, Variant, check_shared_base, model_for_runs,
                                     variants_for)

__all__ = [
    "UserCheck", "load_checks", "run_checks", "ANSWERS_FILE", "SUMMARY_FILE", "check_out_dir", "default_out_dir",
    "prepare_out_dir", "read_summary", "summary_json", "write_results", "loops", "repeated_line",
    "repeated_ngram", "FAMILIES", "InstructionResult", "family", "Answer", "ModelEval", "Scorer",
    "check_rows", "compare", "evaluate", "judge", "BASE", "AdapterSwitch", "Variant", "check_shared_base",
    "model_for_runs", "variants_for",
]
