"""List the models on this machine (localtune's models dir and the HF hub cache), for the TUI."""

from __future__ import annotations

import json
from pathlib import Path


def _dir_size(path: Path) -> int:
    # resolve() so HF cache symlinks count the blob they point to, each blob once
    seen, total = set(), 0
    for f in path.rglob("*"):
        try:
            real = f.resolve()
            if real.is_file() and real not in seen:
                seen.add(real)
                total += real.stat().st_size
        except OSError:
            continue
    return total


def describe_model_dir(path: Path, name: str | None = None, source: str = "local") -> dict | None:
    """{name, path, size_bytes, quantization, model_type, source}; None if not a model dir."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    q = config.get("quantization") or config.get("quantization_config")
    if isinstance(q, dict) and "bits" in q:
        quant = f"{q['bits']}bit"
    else:
        quant = config.get("torch_dtype") or config.get("dtype") or "unknown"
    return {
        "name": name or path.name,
        "path": str(path),
        "size_bytes": _dir_size(path),
        "quantization": quant,
        "model_type": config.get("model_type", "unknown"),
        "source": source,
    }


def _hub_models() -> list[dict]:
    from huggingface_hub import scan_cache_dir

    from localtune.models.hub import hub_cache_dir

    cache = hub_cache_dir()
    if not cache.is_dir():
        return []
    try:
        info = scan_cache_dir(cache)
    except Exception:  # CacheNotFound or a corrupted cache: nothing to list
        return []
    out = []
    for repo in info.repos:
        if repo.repo_type != "model":
            continue
        for rev in sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True):
            if (rev.snapshot_path / "config.json").is_file():
                d = describe_model_dir(rev.snapshot_path, repo.repo_id, "hub")
                if d:
                    d["size_bytes"] = rev.size_on_disk
                    out.append(d)
                break  # newest snapshot with a config only
    return out


def list_models() -> list[dict]:
    """Local model directories (models_dir(), then the HF hub cache), sorted by name."""
    from localtune.models.resolve import models_dir

    found = []
    root = models_dir()
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if p.is_dir() and not p.name.startswith("."):  # dot-dirs are imports in progress
                d = describe_model_dir(p)
                if d:
                    found.append(d)
    found.sort(key=lambda d: d["name"].lower())
    return found + sorted(_hub_models(), key=lambda d: d["name"].lower())
