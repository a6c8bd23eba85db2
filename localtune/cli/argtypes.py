"""argparse types that range-check a number where it is parsed: `--max-seq-len -1` or
`--memory-gb nan` is a usage error (exit 2) naming the flag, never a run that goes wrong later."""

from __future__ import annotations

import argparse
import math


def _number(cast, test, what: str):
    def parse(text: str):
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, lambda v: v >= 1, "an integer >= 1")
nonneg_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a finite number > 0")
finite_float = _number(float, lambda v: True, "a finite number")
open_fraction = _number(float, lambda v: 0 < v < 1, "a number between 0 and 1 (exclusive)")
