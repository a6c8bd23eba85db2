"""Datasets: read and check files, render chat templates with loss masks, stats, split, preview.
(Training batches live in localtune.data.batching, imported on its own: it needs mlx.)"""

from localtune.data.example import FORMATS, DatasetFile, Example, Problem
from localtune.data.formats import detect_format, read_dataset
from localtune.data.preview import preview_segments, segments_from_tokens
from localtune.data.split import split_dataset
from localtune.data.stats import dataset_stats
from localtune.data.template import (
    FALLBACK_CHAT_TEMPLATE,
    TokenizedExample,
    render,
    render_messages,
    tokenize_example,
)

__all__ = [
    "FORMATS", "DatasetFile", "Example", "Problem", "detect_format", "read_dataset",
    "preview_segments", "segments_from_tokens", "split_dataset", "dataset_stats",
    "FALLBACK_CHAT_TEMPLATE", "TokenizedExample", "render", "render_messages", "tokenize_example",
]
