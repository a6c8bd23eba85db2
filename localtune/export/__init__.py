"""Export a run: PEFT adapter, fused mlx_lm model, GGUF file; optionally push to the HF Hub.

    export_run(run_dir, "peft" | "fused" | "gguf", out, ...) -> Path
"""

from __future__ import annotations

from pathlib import Path

from localtune.errors import LocaltuneError

FORMATS = ("peft", "fused", "gguf")


def export_run(run: str | Path, fmt: str, out: str | Path, *, model: str | None = None,
               dequantize: bool = False, base_name: str | None = None, dtype: str = "float16",
               on_event=lambda e: None) -> Path:
    """Write `run`'s adapter in format `fmt` to `out` (a directory; a .gguf file for gguf).
    `on_event` gets notices (a run still training exports the checkpoint of the moment)."""
    from localtune.export.source import adapter_dir, base_model_id, base_model_path
    from localtune import events
    from localtune.runs import read_run, tell_readers

    run = adapter_dir(run)
    tell_readers(run, on_event)  # e.g. exporting the checkpoint of a run still training
    if read_run(run).kind == "reward":
        on_event(events.Notice(f"{run} is a reward model: the export holds its adapter only, not its value "
                               "head; score with `localtune reward score` instead").to_dict())
    if fmt == "peft":
        from localtune.export.peft import export_peft

        name = base_name or base_model_id(run, base_model_path(run, model))
        return export_peft(run, out, base_name=name)
    if fmt == "fused":
        from localtune.export.fused import export_fused

        return export_fused(run, out, model=model, dequantize=dequantize)
    if fmt == "gguf":
        from localtune.export.gguf_export import export_gguf

        return export_gguf(run, out, model=model, dtype=dtype)
    raise LocaltuneError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
