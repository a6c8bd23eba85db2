"""Datasets from the Hugging Face Hub: `--data owner/name` (or `owner/name:split`,
`owner/name@revision`, `owner/name@revision:split`) downloads the repo's JSONL / JSON / Parquet
files (cache first, as models/hub.py does) and picks the file(s) of one split.

A split made of several files (shards) or of Parquet files is written once as one JSONL file under
$LOCALTUNE_DATASETS (default ~/.localtune/datasets), keyed by the snapshot's commit; a split that is
one JSONL/JSON file is read straight from the HF cache. Parquet needs pyarrow (optional).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from localtune import events
from localtune.errors import DataError

ALLOW_PATTERNS = ["*.jsonl", "*.json", "*.parquet"]
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
TRAIN_SPLITS = ("train",)
VALID_SPLITS = ("validation", "valid", "val", "dev", "test")
# JSON files a dataset repo carries that are not rows.
_METADATA = re.compile(r"^(dataset_infos?|dataset_dict|state|config|\.?croissant|metadata)"
                       r"(\.[\w-]+)?\.json$", re.I)
_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_HUB_ID = re.compile(rf"^(?P<repo>{_NAME}/{_NAME})(?:@(?P<rev>[A-Za-z0-9_./-]+?))?(?::(?P<split>[A-Za-z0-9_.-]+))?$")
_SPLIT_TOKEN = r"(?:^|[/_.\-]){}(?:[/_.\-]|$)"


def datasets_dir() -> Path:
    """Where converted hub datasets live: $LOCALTUNE_DATASETS or ~/.localtune/datasets."""
    env = os.environ.get("LOCALTUNE_DATASETS")
    return Path(env).expanduser() if env else Path.home() / ".localtune" / "datasets"


def parse_hub_spec(spec: str) -> tuple[str, str | None, str | None] | None:
    """(repo_id, revision, split) when spec reads as a hub dataset id, else None. A name ending in
    a data-file suffix (data/train.jsonl) or starting like a path (./, /, ~) is a file, not an id."""
    s = str(spec).strip()
    if not s or s.startswith((".", "/", "~")) or s.lower().endswith(DATA_SUFFIXES):
        return None
    m = _HUB_ID.match(s)
    if not m or ".." in m.group("repo"):
        return None
    return m.group("repo"), m.group("rev"), m.group("split")


def is_hub_dataset(spec) -> bool:
    """True when spec is not an existing local path but reads as owner/name[@rev][:split]."""
    return spec is not None and not Path(str(spec)).expanduser().exists() and parse_hub_spec(spec) is not None


def resolve_dataset(spec, *, split: str | tuple[str, ...] = "train", on_event=None) -> Path:
    """A local file for spec: a local path as is (a missing one too: reading it reports it);
    a hub dataset id downloaded (cache first) and narrowed to the file of `split` (a tuple: the
    first split the repo has; an explicit `:split` in spec wins). DataError when offline, not
    found, or no file fits."""
    if spec is None or not is_hub_dataset(spec):
        return Path(str(spec)) if spec is not None else spec
    repo_id, revision, wanted = parse_hub_spec(spec)
    emit = on_event or (lambda _e: None)
    snapshot = _snapshot(repo_id, revision, emit)
    splits = (wanted,) if wanted else ((split,) if isinstance(split, str) else tuple(split))
    files, chosen = _split_files(snapshot, splits, explicit=bool(wanted), spec=spec)
    if len(files) == 1 and files[0].suffix.lower() != ".parquet":
        path = files[0]
    else:
        path = _combined_jsonl(snapshot, repo_id, chosen, files, emit)
    emit(events.Download(repo_id, repo_type="dataset", stage="resolved", split=chosen, path=str(path),
                         message=f"{spec}: {chosen} split -> {path}").to_dict())
    return path


def _snapshot(repo_id: str, revision: str | None, emit) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from localtune.models.hub import _offline, _progress_class, hub_cache_dir

    label = repo_id + (f"@{revision}" if revision else "")
    common = dict(repo_type="dataset", revision=revision, allow_patterns=ALLOW_PATTERNS,
                  cache_dir=hub_cache_dir())
    try:
        path = Path(snapshot_download(repo_id, local_files_only=True, **common))
        emit(events.Download(repo_id, repo_type="dataset", cached=True, path=str(path),
                             message=f"dataset {label}: using the local cache {path}").to_dict())
        return path
    except HFValidationError as e:
        raise DataError(f"{label!r} is neither a local file nor a valid hub dataset id") from e
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    hint = "give a local file (JSONL or JSON) in --data, or connect and retry"
    if _offline():
        raise DataError(f"cannot download dataset {label}: offline (HF_HUB_OFFLINE is set) and "
                        f"not in the local cache; {hint}")
    emit(events.Download(repo_id, repo_type="dataset", stage="start",
                         message=f"downloading dataset {label} from the Hugging Face hub").to_dict())
    try:
        path = Path(snapshot_download(repo_id, tqdm_class=_progress_class(repo_id, emit),
                                      etag_timeout=10, **common))
    except RevisionNotFoundError as e:
        raise DataError(f"cannot download dataset {label}: no revision {revision!r} on the hub") from e
    except (RepositoryNotFoundError, GatedRepoError) as e:
        raise DataError(f"cannot download dataset {label}: no such (accessible) dataset on the hub "
                        "(check the id; gated datasets need `huggingface-cli login`)") from e
    except HFValidationError as e:
        raise DataError(f"{label!r} is neither a local file nor a valid hub dataset id") from e
    except LocalEntryNotFoundError as e:
        raise DataError(f"cannot download dataset {label}: hub unreachable (offline?); {hint}") from e
    except (HfHubHTTPError, OSError) as e:
        raise DataError(f"cannot download dataset {label}: {e}; {hint}") from e
    except Exception as e:  # httpx connection/timeout errors are not OSErrors
        raise DataError(f"cannot download dataset {label}: {type(e).__name__}: {e}; {hint}") from e
    emit(events.Download(repo_id, repo_type="dataset", stage="done", path=str(path),
                         message=f"downloaded dataset {label} to {path}").to_dict())
    return path


def data_files(snapshot: Path) -> list[str]:
    """Row files of a snapshot, as sorted POSIX paths relative to it (metadata JSON left out)."""
    out = []
    for p in snapshot.rglob("*"):
        rel = p.relative_to(snapshot)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix.lower() in DATA_SUFFIXES and not _METADATA.match(p.name):
            out.append(rel.as_posix())
    return sorted(out)


def _split_files(snapshot: Path, splits: tuple[str, ...], *, explicit: bool, spec) -> tuple[list[Path], str]:
    files = data_files(snapshot)
    if not files:
        raise DataError(f"dataset {spec}: no JSONL, JSON or Parquet files in the repo "
                        "(other layouts are not supported; convert to JSONL and pass the file)")
    for s in splits:
        pat = re.compile(_SPLIT_TOKEN.format(re.escape(s)), re.I)
        hits = [f for f in files if pat.search(f.rsplit(".", 1)[0])]
        if hits:
            # Mixed formats for one split (train.jsonl and train.parquet): keep the first kind.
            kind = Path(hits[0]).suffix.lower()
            return [snapshot / f for f in hits if Path(f).suffix.lower() == kind], s
    if not explicit and splits == TRAIN_SPLITS and len(files) == 1:
        return [snapshot / files[0]], "train"  # a one-file dataset is its train split
    shown = ", ".join(files[:8]) + (f", ... ({len(files)} files)" if len(files) > 8 else "")
    want = " or ".join(repr(s) for s in splits)
    raise DataError(f"dataset {spec}: no file for split {want} (files: {shown}); "
                    "name the split as owner/name:split")


def _combined_jsonl(snapshot: Path, repo_id: str, split: str, files: list[Path], emit) -> Path:
    """Shards and Parquet written once as one JSONL file, keyed by the snapshot's commit."""
    out = datasets_dir() / repo_id.replace("/", "--") / snapshot.name / f"{split}.jsonl"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    emit(events.Download(repo_id, repo_type="dataset", stage="convert",
                         message=f"dataset {repo_id}: writing the {split} split ({len(files)} file(s)) to {out}"
                         ).to_dict())
    try:
        with open(tmp, "wb") as f:
            for src in files:
                if src.suffix.lower() == ".parquet":
                    for row in _parquet_rows(src, repo_id):
                        f.write(json.dumps(row, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
                    continue
                data = src.read_bytes().removeprefix(b"\xef\xbb\xbf")
                if data.lstrip().startswith(b"["):  # a JSON array file: one row a line
                    try:
                        rows = json.loads(data.decode("utf-8"))
                    except ValueError as e:
                        raise DataError(f"dataset {repo_id}: {src.name}: invalid JSON: {e}") from e
                    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
                f.write(data if not data or data.endswith(b"\n") else data + b"\n")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def _parquet_rows(path: Path, repo_id: str):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"dataset {repo_id} is stored as Parquet ({path.name}); reading it needs "
                        "pyarrow: pip install pyarrow (or pip install 'localtune[parquet]')") from None
    try:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(batch_size=1024):
            yield from batch.to_pylist()
    except DataError:
        raise
    except Exception as e:  # a broken or unsupported file
        raise DataError(f"dataset {repo_id}: cannot read {path.name}: {e}") from e
