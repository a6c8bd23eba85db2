"""Export a run: PEFT adapter, fused mlx_lm model, GGUF file; optionally push to the HF Hub.

    export_run(run_dir, "peft" | "fused" | "gguf", out, ...) -> Path

`out` is checked before any work (localtune.outputs): an existing non-empty directory or file is
refused unless `force`, and the run itself, its base model and the directories around them never.
"""

from __future__ import annotations

from pathlib import Path

from localtune.errors import LocaltuneError

FORMATS = ("peft", "fused", "gguf")


def export_run(run: str | Path, fmt: str, out: str | Path, *, model: str | None = None,
               dequantize: bool = False, base_name: str | None = None, dtype: str = "float16",
               force: bool = False, on_event=lambda e: None) -> Path:
    """Write `run`'s adapter in format `fmt` to `out` (a directory; a .gguf file for gguf).
    `on_event` gets notices (a run still training exports the checkpoint of the moment) and a
    warning when the base is not the one the run was trained on."""
    from localtune.export.source import adapter_dir, base_model_id, base_model_path
    from localtune import events
    from localtune.models.identity import warn_if_other_base
    from localtune.outputs import check_output
    from localtune.runs import read_run, tell_readers

    if fmt not in FORMATS:
        raise LocaltuneError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    run = adapter_dir(run)
    base = base_model_path(run, model)
    sources = (run, base)
    check_output(out, kind="file" if fmt == "gguf" else "dir", force=force, sources=sources)
    tell_readers(run, on_event)  # e.g. exporting the checkpoint of a run still training
    warn_if_other_base(run, base, on_event)
    if read_run(run).kind == "reward":
        on_event(events.Notice(f"{run} is a reward model: the export holds its adapter only, not its value "
                               "head; score with `localtune reward score` instead").to_dict())
    if fmt == "peft":
        from localtune.export.peft import export_peft

        name = base_name or base_model_id(run, base)
        return export_peft(run, out, base_name=name, force=force)
    if fmt == "fused":
        from localtune.export.fused import export_fused

        return export_fused(run, out, model=str(base), dequantize=dequantize, force=force)
    from localtune.export.gguf_export import export_gguf

    return export_gguf(run, out, model=str(base), dtype=dtype, force=force)
