"""Hugging Face Hub downloads (weights, config and tokenizer files only), cache first."""

from __future__ import annotations

import os
from pathlib import Path

from localtune import events
from localtune.errors import ModelError

ALLOW_PATTERNS = [
    "*.json",
    "*.safetensors",
    "tokenizer*",
    "*.model",
    "*.tiktoken",
    "*.txt",
    "*.jinja",
]


def _progress_class(repo_id: str, on_event):
    """A tqdm stand-in for snapshot_download that forwards progress to on_event, silently."""
    from tqdm.auto import tqdm

    class _Forward(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = False
            kwargs["file"] = _Null()
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            out = super().update(n)
            on_event(events.Download(repo_id, desc=self.desc, done=self.n, total=self.total, unit=self.unit,
                                     message=f"{self.desc or repo_id}: {self.n}/{self.total or '?'} {self.unit}"
                                     ).to_dict())
            return out

    return _Forward


class _Null:
    def write(self, _s):
        pass

    def flush(self):
        pass


def _offline() -> bool:
    # Read the env at call time too: huggingface_hub freezes its constants at import.
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or env in ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The HF hub cache, honouring HF_HUB_CACHE / HF_HOME as set now (not at import)."""
    from huggingface_hub import constants

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(constants.HF_HUB_CACHE)


def cached_model(repo_id: str) -> Path | None:
    """The local snapshot of repo_id from the HF cache when it has a config.json, else None."""
    from huggingface_hub import snapshot_download

    try:
        path = Path(
            snapshot_download(
                repo_id,
                allow_patterns=ALLOW_PATTERNS,
                local_files_only=True,
                cache_dir=hub_cache_dir(),
            )
        )
    except Exception:  # not cached (LocalEntryNotFoundError) or a malformed repo id
        return None
    return path if (path / "config.json").is_file() else None


def download_model(repo_id: str, *, on_event=None) -> Path:
    """Local directory of a hub model repo: from the HF cache if there, else downloaded.

    Raises ModelError when offline (HF_HUB_OFFLINE) or the hub is unreachable or the repo
    does not exist, with a message saying what to pass instead.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    emit = on_event or (lambda _e: None)
    cached = cached_model(repo_id)
    if cached is not None:
        emit(events.Download(repo_id, cached=True, path=str(cached),
                             message=f"{repo_id}: using the local cache {cached}").to_dict())
        return cached
    hint = "put a model directory or a .gguf path in --model, or connect and retry"
    if _offline():
        raise ModelError(f"cannot download {repo_id}: offline (HF_HUB_OFFLINE is set); {hint}")
    emit(events.Download(repo_id, stage="start", message=f"downloading {repo_id} from the Hugging Face hub").to_dict())
    try:
        path = Path(
            snapshot_download(
                repo_id,
                allow_patterns=ALLOW_PATTERNS,
                tqdm_class=_progress_class(repo_id, emit),
                cache_dir=hub_cache_dir(),
                etag_timeout=10,
            )
        )
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise ModelError(f"cannot download {repo_id}: no such (accessible) model on the hub") from e
    except HFValidationError as e:
        raise ModelError(f"{repo_id!r} is neither a local path nor a valid hub repo id") from e
    except LocalEntryNotFoundError as e:
        raise ModelError(f"cannot download {repo_id}: hub unreachable (offline?); {hint}") from e
    except (HfHubHTTPError, OSError) as e:  # HTTP errors, disk full
        raise ModelError(f"cannot download {repo_id}: {e}; {hint}") from e
    except Exception as e:  # httpx connection/timeout errors are not OSErrors
        raise ModelError(f"cannot download {repo_id}: {type(e).__name__}: {e}; {hint}") from e
    if not (path / "config.json").is_file():
        raise ModelError(f"{repo_id} has no config.json: not a transformers/mlx model repo")
    emit(events.Download(repo_id, stage="done", path=str(path), message=f"downloaded {repo_id} to {path}").to_dict())
    return path
