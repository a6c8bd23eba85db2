"""The sampling flags of every command that generates (chat, eval, demo): one set of names, one check.

Flags left unset fall back to the model's generation_config.json, then to localtune's defaults
(greedy, 256 tokens); see localtune.generate.Sampling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the annotation only: parsing the command line stays free of MLX
    from localtune.generate import Sampling

_FLAGS = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty", "repetition_context_size",
          "max_tokens", "seed")


def add_sampling_flags(parser, *, max_tokens_help: str = "most tokens per answer (default 256)") -> None:
    g = parser.add_argument_group("sampling (unset: the model's generation_config.json, else greedy)")
    g.add_argument("--temperature", "--temp", type=float, help="0 = greedy (the default)")
    g.add_argument("--top-p", type=float, help="nucleus sampling, in (0, 1]; 1 = off")
    g.add_argument("--top-k", type=int, help="keep the k likeliest tokens; 0 = off")
    g.add_argument("--min-p", type=float, help="drop tokens below min-p x the top probability; 0 = off")
    g.add_argument("--repetition-penalty", type=float, help="> 1 discourages repeating recent tokens; 1 = off")
    g.add_argument("--repetition-context-size", type=int, help="recent tokens the penalty looks at (default 20)")
    g.add_argument("--max-tokens", type=int, help=max_tokens_help)
    g.add_argument("--seed", type=int, help="random seed of sampled answers (default 0)")


def sampling_overrides(args, **defaults) -> dict:
    """The sampling flags the user set ({} for none), checked now so a bad value fails before any
    model loads; `defaults` fill flags the user left unset (a command's own default)."""
    given = {k: getattr(args, k, None) for k in _FLAGS}
    given = {k: v if v is not None else defaults.get(k) for k, v in given.items()}
    given = {k: v for k, v in given.items() if v is not None}
    from localtune.generate import Sampling  # here: parsing the command line stays free of MLX

    Sampling(**given).validate()
    return given


def sampling_for(args, model_dir, **defaults) -> Sampling:
    """The Sampling a command uses: flags over generation_config.json over localtune's defaults."""
    from localtune.generate import Sampling

    return Sampling.from_generation_config(model_dir, **sampling_overrides(args, **defaults)).validate()
