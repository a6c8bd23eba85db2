import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import localtune  # noqa: E402,F401  (OpenBLAS before mlx, for every test)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random f32 tiny llama with the byte-level ChatML tokenizer (session-wide, read-only)."""
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_untied_model_dir(tmp_path_factory):
    """A tiny llama with its own output head: its sampled answers differ (the tied one repeats
    its last token), for tests that need distinct answers (feedback sampling)."""
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tinyu") / "model", tied=False)


@pytest.fixture(scope="session")
def flat_model_dir(tmp_path_factory):
    """A tiny model with a flat next-token distribution (small embeddings): its sampled answers
    vary, as online-RL tests need (the default tiny model answers '\n' over and over)."""
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("flat") / "model", embed_scale=0.15)


@pytest.fixture(scope="session")
def tiny_q4_model_dir(tmp_path_factory):
    from tiny import make_tiny_model_dir

    return make_tiny_model_dir(tmp_path_factory.mktemp("tinyq") / "model", quantize_bits=4)


# --- shared data and configs (fixtures, so every test directory gets the same ones) ---------------

ECHO_WORDS = "apple river stone cloud ember maple frost comet lotus amber cedar delta".split()


def _write_echo_rows(path, n: int, seed: int):
    """A learnable chat task: "echo <two words>" -> "Aye! <the words>", a third with a system prompt."""
    import json
    import random

    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            w = " ".join(rng.sample(ECHO_WORDS, 2))
            msgs = [{"role": "user", "content": f"echo {w}"}, {"role": "assistant", "content": f"Aye! {w}"}]
            if rng.random() < 0.3:
                msgs = [{"role": "system", "content": "Be brief."}] + msgs
            f.write(json.dumps({"messages": msgs}) + "\n")
    return path


def _write_numbered_rows(path, n: int, user: str = "hi {i}", assistant: str = "yo {i}"):
    """n chat rows numbered 0..n-1 (the templates get the row number as {i})."""
    import json

    Path(path).write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": user.format(i=i)},
                                 {"role": "assistant", "content": assistant.format(i=i)}]}) + "\n"
        for i in range(n)))
    return Path(path)


def _write_echo_pairs(path, pairs):
    """The learnable preference over word pairs (a, b): chosen repeats the words and ends with the
    marker " #"; rejected stops right after the words. Half the rows in each format."""
    import json

    with open(path, "w") as f:
        for i, (a, b) in enumerate(pairs):
            w = f"{a} {b}"
            if i % 2:
                row = {"prompt": f"echo {w}", "chosen": f"{w} #", "rejected": w}
            else:
                user = {"role": "user", "content": f"echo {w}"}
                row = {"chosen": [user, {"role": "assistant", "content": f"{w} #"}],
                       "rejected": [user, {"role": "assistant", "content": w}]}
            f.write(json.dumps(row) + "\n")
    return path


@pytest.fixture(scope="session")
def echo_words():
    return list(ECHO_WORDS)


@pytest.fixture(scope="session")
def echo_pairs():
    """write(path, [(word, word), ...]) -> path: the learnable preference pairs."""
    return _write_echo_pairs


@pytest.fixture(scope="session")
def echo_rows():
    """write(path, n, seed) -> path: the learnable echo task (random word pairs)."""
    return _write_echo_rows


@pytest.fixture(scope="session")
def numbered_rows():
    """write(path, n, user="hi {i}", assistant="yo {i}") -> path: plain numbered chat rows."""
    return _write_numbered_rows


@pytest.fixture(scope="session")
def tiny_config(tiny_model_dir):
    """make(out, data, *, cls=TrainConfig, **options) -> a config of a small run on the tiny model:
    4 steps of 2 rows, LoRA rank 4 on every block, a report every step, a checkpoint every 2."""
    from localtune.config import TrainConfig, build_config

    def make(out, data, *, cls=TrainConfig, **options):
        base = dict(model=str(tiny_model_dir), data=str(data), out=str(out), iters=4, batch_size=2, lr=1e-3,
                    lora_rank=4, lora_layers=-1, save_every=2, report_every=1)
        return build_config(None, {**base, **options}, cls=cls)

    return make


@pytest.fixture(scope="session")
def stop_after():
    """stop_after(n) -> a should_stop that asks for a stop before optimizer step n + 1."""

    def make(n: int):
        calls = {"n": 0}

        def should_stop() -> bool:
            calls["n"] += 1
            return calls["n"] > n

        return should_stop

    return make


# --- runs that are training now (the status rule believes a live record only while its trainer
# holds the run's lock: a record naming a pid is not enough) ---------------------------------------

@pytest.fixture
def hold_run():
    """hold_run(path) -> RunDir: this test process plays the trainer of that run: it takes the run's
    lock (once per run), so a record naming os.getpid() as running reads "running". Released at
    the end of the test. Not for a run a test will Stop: that signals the pid in the record (use
    stand_in_trainer)."""
    from localtune.runs import RunDir

    held: dict[Path, RunDir] = {}

    def hold(path) -> RunDir:
        key = Path(path).resolve()
        if key not in held:
            run = RunDir(key)
            run.acquire()
            held[key] = run
        return held[key]

    yield hold
    for run in held.values():
        run.release()


@pytest.fixture
def stand_in_trainer():
    """stand_in_trainer(path) -> Popen: another process takes the run's lock and records itself as
    its running trainer (run_dirs.start_stand_in_trainer); it ignores SIGTERM. Killed at the end."""
    from run_dirs import start_stand_in_trainer

    procs = []

    def start(path):
        procs.append(start_stand_in_trainer(path))
        return procs[-1]

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def tiny_run(tiny_model_dir, tmp_path_factory, numbered_rows, tiny_config):
    """A finished 4-step SFT run of the tiny model (checkpoints at 2 and 4), session-wide: copy it
    before changing anything in it."""
    from localtune.train.session import run_training
    from localtune.train.sft import sft_task

    tmp = tmp_path_factory.mktemp("tiny_run")
    cfg = tiny_config(tmp / "run", numbered_rows(tmp / "d.jsonl", 12), lora_layers=16)
    return run_training(cfg, sft_task)


@pytest.fixture(scope="session")
def echo_pair_files(tmp_path_factory, echo_pairs):
    """(train, valid): 48 training and 24 held-out preference pairs over disjoint word pairs."""
    import random

    d = tmp_path_factory.mktemp("pairs")
    combos = [(a, b) for a in ECHO_WORDS for b in ECHO_WORDS if a != b]
    random.Random(0).shuffle(combos)
    return echo_pairs(d / "train.jsonl", combos[:48]), echo_pairs(d / "valid.jsonl", combos[48:72])


@pytest.fixture(scope="session")
def pair_config(tiny_config):
    """make(cls, (train, valid), out, **options): a pair mode's (DPO, reward) run on the tiny model:
    4 steps of 4 pairs at lr 5e-3, validation and a checkpoint only at the end."""

    def make(cls, data, out, **kw):
        train, valid = data
        return tiny_config(out, train, cls=cls, **{**dict(valid=str(valid), batch_size=4, lr=5e-3, eval_every=0,
                                                          save_every=0, warmup=0), **kw})

    return make
