"""bench/best_of_n_rows.py's choice of a prompt's answer (the rejection-sampling rows of bench/NOTES.md,
session 9): the first answer that ended, does not loop and reaches the reward bar."""

from localtune.generate import Completion
from script_modules import load_script


def bench_module():
    return load_script("bench/best_of_n_rows.py")


def answer(text, ended=True):
    return Completion(text, [1, 2], "stop" if ended else "length", 3)


def test_first_answer_that_ends_without_a_loop_and_reaches_the_bar():
    pick_best = bench_module().pick_best
    looping = "Yes indeed I do.\n" * 4
    answers = [answer("cut off", ended=False), answer(looping), answer("low"), answer("good one"),  # prompt 0
               answer("also fine"), answer("later fine"), answer("x"), answer("y"),  # prompt 1
               answer("no verdict"), answer("short", ended=False), answer(looping), answer("z")]  # prompt 2
    rewards = [1.0, 1.0, 0.5, 1.0,
               1.0, 1.0, 1.0, 0.0,
               None, 1.0, 1.0, 0.9]
    picks, counts = pick_best(answers, rewards, 4, 1.0)
    assert [p.text if p else None for p in picks] == ["good one", "also fine", None]
    assert counts == {"ended": 10, "loops": 2, "kept": 4}
    picks, _ = pick_best(answers, rewards, 4, 0.5)  # a lower bar: "low" comes first in prompt 0
    assert [p.text if p else None for p in picks] == ["low", "also fine", "z"]
