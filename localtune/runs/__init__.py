"""The run directory: the contract between the engine, the CLI and the TUI, and the only code that
knows the names of the files inside one (layout.py spells them; a test greps for strays).

    RunDir(path)             one run directory: lock, record (run.json), metrics and text logs, paths
    read_run(path)           RunInfo: the record read tolerantly, the effective status (incl.
                             "interrupted"), is_training, the newest good checkpoint, its metrics
    run_status(record, lock) the status rule, in one place (and the status words: LIVE, ENDED, ...)
    list_runs(root)          every run under root, newest first (dicts for tables)
    delete_run(path)         refuses anything that is not a run directory, and a run still training
    tell_readers(path, emit) notices for a reader of its adapter (still training, old relative paths)
    adapter_runs(root)       directories holding an adapter (for chat)
    checkpoints.*            checkpoint paths, which are whole, prune, partial-write cleanup
    list_evals(path)         the run's evaluations (RUN/eval/*/summary.json, answers.jsonl)
"""

from localtune.runs import layout
from localtune.runs.checkpoints import (
    checkpoint_dir,
    checkpoint_problem,
    latest_checkpoint,
    latest_good_checkpoint,
    list_checkpoints,
)
from localtune.runs.evals import EvalInfo, list_evals, read_eval
from localtune.runs.info import (
    ENDED,
    INTERRUPTED,
    LIVE,
    RECORD_VERSION,
    RESUMABLE,
    RunInfo,
    adapter_runs,
    default_run_dir,
    default_run_name,
    delete_run,
    has_adapter,
    is_run_dir,
    list_runs,
    owning_run,
    read_run,
    record_of,
    run_status,
    tell_readers,
)
from localtune.runs.layout import DEFAULT_ROOT
from localtune.runs.liveness import pid_alive, process_running
from localtune.runs.rundir import RunDir, parse_event, read_metrics

__all__ = [
    "DEFAULT_ROOT", "ENDED", "EvalInfo", "INTERRUPTED", "LIVE", "RECORD_VERSION", "RESUMABLE", "RunDir",
    "RunInfo", "adapter_runs", "checkpoint_dir", "checkpoint_problem", "default_run_dir", "default_run_name",
    "delete_run", "has_adapter", "is_run_dir", "latest_checkpoint", "latest_good_checkpoint", "layout",
    "list_checkpoints", "list_evals", "list_runs", "owning_run", "parse_event", "pid_alive", "process_running",
    "read_eval", "read_metrics", "read_run", "record_of", "run_status", "tell_readers",
]
