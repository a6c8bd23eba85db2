"""Turn dataset files into token rows for training, reporting what was dropped or truncated."""

from __future__ import annotations

from localtune import events
from localtune.data import read_dataset, tokenize_example
from localtune.data.batching import fit_rows
from localtune.errors import DataError


def load_rows(path: str, tokenizer, *, format: str | None, train_on_prompt: bool, max_seq_len: int,
              overlong: str, on_event, role: str = "train", columns=None):
    """Read, validate and tokenize a file. Returns (rows, examples kept). Bad rows are reported
    through on_event ("data_problem") and skipped; DataError when nothing usable is left."""
    ds = read_dataset(path, format=format, columns=columns)
    for p in ds.problems:
        on_event(events.DataProblem(role, str(p)).to_dict())
    tokenized = [tokenize_example(ex, tokenizer, train_on_prompt=train_on_prompt) for ex in ds.examples]
    rows, index, counts = fit_rows([(t.ids, t.mask) for t in tokenized], max_seq_len, overlong)
    if not rows:
        raise DataError(f"{path}: no usable rows after validation and --max-seq-len {max_seq_len}")
    on_event(events.Data(role, str(path), ds.format, ds.n_rows, len(rows), problems=len(ds.problems),
                         truncated=counts["truncated"], dropped=counts["dropped"],
                         tokens=sum(len(r[0]) for r in rows)).to_dict())
    return rows, [ds.examples[i] for i in index]
