"""IFEval's checkers through localtune's driver: every family on a passing and a failing answer,
strict vs loose, bad rows refused before generating, and no network needed."""

import os
import subprocess
import sys

import pytest

from localtune.eval import ifeval

# (instruction id, kwargs, prompt, passing answer, failing answer): every one of the 25 types.
CASES = [
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": "at least"}, "p",
     "This is VERY IMPORTANT for you.", "This is very important for you."),
    ("change_case:english_capital", {}, "p",
     "THE SEA IS CALM TODAY AND THE WIND IS LIGHT.", "The sea is calm today and the wind is light."),
    ("change_case:english_lowercase", {}, "p",
     "the sea is calm today and the wind is light.", "The sea is calm today and the wind is light."),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Name a colour."}, "Name a colour. Repeat first.",
     "Name a colour. Blue.", "Blue. Name a colour."),
    ("combination:two_responses", {}, "p", "Go hiking.\n******\nRead a book.", "Go hiking. Or read a book."),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "p",
     "Dear [name], see you on [date].", "Dear [name], see you soon."),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "p",
     "See you soon.\nP.S. Bring a coat.", "See you soon. Bring a coat."),
    ("detectable_format:constrained_response", {}, "p", "My answer is no.", "Penguins cannot fly."),
    ("detectable_format:json_format", {}, "p", '```json\n{"name": "Kenya"}\n```', "name: Kenya"),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2}, "p",
     "SECTION 1\nPack towels.\nSECTION 2\nPack snacks.", "Pack towels and snacks."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "p",
     "* Save coins.\n* Cook at home.", "* Save coins.\nCook at home and walk more."),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "p",
     "Sleep *heals the body* and *clears the mind*.", "Sleep heals the body and *clears the mind*."),
    ("detectable_format:title", {}, "p", "<<Autumn>>\nLeaves fall.", "Autumn\nLeaves fall."),
    ("keywords:existence", {"keywords": ["steel", "cold"]}, "p",
     "A steel bottle keeps water cold.", "A bottle keeps water cool."),
    ("keywords:forbidden_words", {"forbidden_words": ["snow"]}, "p",
     "The morning was white and quiet.", "The morning was full of snow."),
    ("keywords:frequency", {"keyword": "win", "frequency": 2, "relation": "at least"}, "p",
     "We win together and we win again.", "We play together."),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "p",
     "A garden of roses.", "A lazy zebra in a zoo."),
    ("language:response_language", {"language": "es"}, "p",
     "La cena familiar es mi momento favorito de la semana porque todos hablamos juntos.",
     "The family dinner is my favourite moment of the week because we all talk together."),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "today"},
     "p", "Bread is old.\n\nToday, bread is everywhere.", "Bread is old.\n\nNow bread is everywhere."),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "p",
     "A compass points north.\n***\nSailors use it.", "A compass points north. Sailors use it."),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": "less than"}, "p",
     "The moon is bright. It circles Earth.", "The moon is bright. It circles Earth. It has craters. It is old."),
    ("length_constraints:number_words", {"num_words": 5, "relation": "at least"}, "p",
     "A kite rides the rising wind.", "Kites fly."),
    ("punctuation:no_comma", {}, "p", "The station is busy and loud.", "The station is busy, loud and warm."),
    ("startend:end_checker", {"end_phrase": "Sweet dreams."}, "p",
     "Keep the room dark. Sweet dreams.", "Sweet dreams. Keep the room dark."),
    ("startend:quotation", {}, "p", '"Teachers change lives."', "Teachers change lives."),
]


def test_the_cases_cover_all_25_instructions_in_9_families():
    assert {c[0] for c in CASES} == set(ifeval.registry())
    assert len(CASES) == 25
    assert {ifeval.family(c[0]) for c in CASES} == set(ifeval.FAMILIES)


@pytest.mark.parametrize("iid,kwargs,prompt,good,bad", CASES, ids=[c[0] for c in CASES])
def test_each_checker_passes_a_following_answer_and_fails_another(iid, kwargs, prompt, good, bad):
    assert ifeval.row_problems([iid], [kwargs], prompt) == []
    [ok] = ifeval.check(good, [iid], [kwargs], prompt)
    [not_ok] = ifeval.check(bad, [iid], [kwargs], prompt)
    assert ok.instruction_id == iid and ok.strict and ok.loose
    assert not not_ok.strict and not not_ok.loose


def test_loose_forgives_a_first_line_and_markdown_stars_but_strict_does_not():
    answer = 'Sure, here it is:\n"Teachers change lives."'
    [r] = ifeval.check(answer, ["startend:quotation"], [{}], "p")
    assert (r.strict, r.loose) == (False, True)
    [r] = ifeval.check("**the sea is calm.**", ["change_case:english_lowercase"], [{}], "p")
    assert r.strict and r.loose
    [r] = ifeval.check("Keep it dark. **Sweet dreams.**", ["startend:end_checker"],
                       [{"end_phrase": "Sweet dreams."}], "p")
    assert (r.strict, r.loose) == (False, True)


def test_an_empty_answer_follows_nothing():
    assert ifeval.check("   ", ["punctuation:no_comma"], [{}], "p") == [
        ifeval.InstructionResult("punctuation:no_comma", False, False)]


def test_rows_that_cannot_be_checked_are_refused():
    problems = ifeval.row_problems(["startend:nope", "keywords:existence", "length_constraints:number_words"],
                                   [{}, {"keywords": ["a"], "bogus": 1}, {"num_words": 5}], "p")
    assert "unknown instruction 'startend:nope'" in problems[0]
    assert "keywords:existence: bad kwargs" in problems[1]
    assert "relation missing" in problems[2]  # a checker would pick it at random


def test_ifeval_checks_work_offline_with_no_nltk_download(tmp_path):
    """A fresh process, the network cut at the socket, NLTK's own data folders empty: the Punkt model
    comes from the installed package and sentence/word counts work."""
    code = (
        "import socket\n"
        "def no_net(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = no_net; socket.create_connection = no_net\n"
        "import nltk; nltk.data.path[:] = []\n"
        "from localtune.eval import ifeval\n"
        "[r] = ifeval.check('One. Two. Three. Four.', ['length_constraints:number_sentences'],"
        " [{'num_sentences': 4, 'relation': 'at least'}], 'p')\n"
        "[c] = ifeval.check('A LOUD DAY for YOU', ['change_case:capital_word_frequency'],"
        " [{'capital_frequency': 3, 'capital_relation': 'at least'}], 'p')\n"
        "print(r.strict, c.strict)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LOCALTUNE_NLTK_DATA": str(tmp_path / "nltk"),
           "NLTK_DATA": str(tmp_path / "empty")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True"]
    assert (tmp_path / "nltk" / "tokenizers" / "punkt_tab" / "english" / "abbrev_types.txt").is_file()


def test_an_undetectable_language_is_followed_without_a_line_on_the_terminal():
    """langdetect finds no features in a URL: IFEval counts the instruction as followed, and
    if-verifiable says so with logging.error on the root logger, which a fresh process (no pytest
    log capture) would print in the middle of a progress bar."""
    code = (
        "from localtune.eval import ifeval\n"
        "[r] = ifeval.check('https://example.com/abc', ['language:response_language'], [{'language': 'de'}], 'p')\n"
        "print(r.strict)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True"]
    assert "Unable to detect language" not in out.stderr
