"""The run directory is a contract in code: only localtune/runs/ knows the names of the files inside
a run directory. Every other module in localtune/ and tui/ goes through it (RunDir's paths,
runs.layout), so renaming a file or adding one touches one package."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The record, the metrics log, the checkpoints directory and the checkpoint names, as spelled in code
# or in prose (a comment naming run.json is a convention too).
NAMES = re.compile(r"run\.json|metrics\.jsonl|checkpoints/|[\"']checkpoints[\"']|[\"']step-|step-\{")


def test_only_the_runs_package_names_files_inside_a_run_directory():
    owner = ROOT / "localtune" / "runs"
    strays = []
    for base in (ROOT / "localtune", ROOT / "tui"):
        for path in sorted(base.rglob("*.py")):
            if owner in path.parents:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if NAMES.search(line):
                    strays.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not strays, "\n".join(strays)


def test_the_check_sees_what_it_looks_for():
    # The pattern must catch each way these names have been written by hand (it did, before the
    # run directory became code): a record read, a metrics path, a checkpoint glob.
    for line in ('json.loads((run / "run.json").read_text())', 'read_metrics(run / "metrics.jsonl")',
                 '(run_dir / "checkpoints").glob("step-*")', 'f"checkpoints/step-{step:06d}"'):
        assert NAMES.search(line), line
    assert not NAMES.search('keep_checkpoints: int = _f(3, "checkpoints to keep (the newest)")')
