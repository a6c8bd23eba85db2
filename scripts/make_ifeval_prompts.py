"""Make many IFEval-schema training prompts: a task (a template filled with a topic) followed by one or
two instructions, each worded in one of a few ways (IFEval's own description, built by the checker
class, or a plainer phrasing of ours), with kwargs drawn from ranges a short answer can meet.

    python scripts/make_ifeval_prompts.py --rows 480 --seed 0 --out samples/ifeval/synthetic.jsonl

Why: GRPO on the 92 hand-written training rows learnt prompt-specific tricks (sessions 5-10 in
bench/NOTES.md); the instruction-to-behaviour mapping needs many prompts per instruction. The same
idea as the IF-RLVR data of Tulu 3 (tasks x IFEval constraints), kept small and offline. No task here
shares a topic with samples/ifeval/valid.jsonl or heldout.jsonl (checked as each row is drawn: a
row whose task shares two content words with one of theirs is drawn again).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys

TOPICS = [
    "a mountain hike", "a city library", "a school bus", "a pet hamster", "a rainy weekend",
    "a bicycle repair", "a chess club", "a science fair", "a camping trip", "a new neighbour",
    "a birthday party", "a farmers' market stall", "a train station", "a violin lesson",
    "a snowy village", "a desert road trip", "a football match", "a quiet cafe", "an old bridge",
    "a kitchen garden", "a robot vacuum", "a museum visit", "a school play", "a sailing lesson",
    "a lost wallet", "a power cut", "a summer fair", "a night sky", "a dentist visit",
    "a music festival", "a houseplant", "a bakery", "a haircut", "a moving day", "a zoo",
    "a treehouse", "a swimming pool", "a street musician", "a morning jog", "a science museum",
    "a fire drill", "a board meeting", "a school trip", "a car wash", "a ferry ride",
    "a village fete", "a home office", "a garage sale", "a puppy", "a photo album",
    "a pizza night", "a spelling bee", "a tennis lesson", "a farm visit", "a city bus",
    "a clock tower", "a quiet beach at dawn", "a kite", "a laptop", "a vegetable soup",
    "a flat tyre", "a hot air balloon", "a comic book", "a hospital volunteer", "a recycling bin",
    "a yoga class", "a wedding toast", "a job advert", "a pond", "a mobile phone",
    "an art class", "a garden shed", "a long flight", "a campfire", "a castle",
    "a windmill", "a toy shop", "a dance class", "a bird feeder", "a fishing lake",
]

TASKS = [
    "Write a short paragraph about {t}.", "Describe {t}.", "Write a short poem about {t}.",
    "Write a short story about {t}.", "Write a short advert for {t}.", "Explain {t} to a child.",
    "Give tips for {t}.", "Write a short diary entry about {t}.", "Write a short email to a friend about {t}.",
    "Write a short review of {t}.", "Write a short speech about {t}.", "Write a note to a colleague about {t}.",
    "Write a short news report about {t}.", "List the good things about {t}.",
    "Write a short blog post about {t}.", "Write a text message about {t}.",
]

# Words for keyword checks: plain ones a short answer about anything can use.
KEYWORDS = ["happy", "time", "friend", "day", "simple", "people", "place", "small", "great",
            "morning", "quiet", "bright", "together", "important", "careful", "local", "future"]
FORBIDDEN = ["very", "good", "nice", "really", "thing", "like", "big", "just", "also", "great"]
LANGUAGES = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}
END_PHRASES = ["Is there anything else I can help with?", "Thank you!", "See you soon.", "That is all.",
               "Have a great day!"]


def _official(iid, kwargs):
    """IFEval's own wording of the instruction, built by its checker class."""
    from localtune.eval.ifeval import registry

    return registry()[iid](iid).build_description(**kwargs)


def _instruction(iid, rng, task):
    """(kwargs, text) for one instruction; kwargs as the checker expects them."""
    if iid == "change_case:english_lowercase":
        return {}, rng.choice(["Write only in lowercase letters, no capital letters at all.",
                               "Use lowercase letters throughout; no capital letters are allowed.", None])
    if iid == "change_case:english_capital":
        return {}, rng.choice(["Write your whole answer in English and in CAPITAL LETTERS only.",
                               "Use only capital letters, in English.", None])
    if iid == "change_case:capital_word_frequency":
        k = {"capital_frequency": rng.randint(2, 4), "capital_relation": "at least"}
        return k, rng.choice([f"Write at least {k['capital_frequency']} words in all capital letters for emphasis.", None])
    if iid == "combination:repeat_prompt":
        k = {"prompt_to_repeat": task}
        return k, rng.choice(["First repeat the request word for word without change, then give your answer "
                              "(do not say anything before repeating the request; the request to repeat does "
                              "not include this sentence).", None])
    if iid == "combination:two_responses":
        return {}, rng.choice(["Give two different answers, separated by 6 asterisk symbols: ******.", None])
    if iid == "detectable_content:number_placeholders":
        k = {"num_placeholders": rng.randint(1, 3)}
        return k, rng.choice([f"Include at least {k['num_placeholders']} placeholders in square brackets, like [name].", None])
    if iid == "detectable_content:postscript":
        k = {"postscript_marker": rng.choice(["P.S.", "P.P.S"])}
        return k, rng.choice([f"At the end, add a postscript starting with {k['postscript_marker']}", None])
    if iid == "detectable_format:constrained_response":
        return {}, None
    if iid == "detectable_format:json_format":
        return {}, rng.choice(["Your entire output should be wrapped in JSON format.", None])
    if iid == "detectable_format:multiple_sections":
        k = {"section_spliter": rng.choice(["SECTION", "Section", "PART"]), "num_sections": rng.randint(2, 3)}
        return k, rng.choice([f"Your response must have {k['num_sections']} sections. Mark the beginning of each "
                              f"section with {k['section_spliter']} X, such as {k['section_spliter']} 1.", None])
    if iid == "detectable_format:number_bullet_lists":
        k = {"num_bullets": rng.randint(2, 5)}
        return k, rng.choice([f"Your answer must contain exactly {k['num_bullets']} bullet points in markdown, "
                              "such as: * point one * point two", None])
    if iid == "detectable_format:number_highlighted_sections":
        k = {"num_highlights": rng.randint(1, 3)}
        return k, rng.choice([f"Highlight at least {k['num_highlights']} parts of your answer with markdown, for "
                              "example *highlighted part*.", None])
    if iid == "detectable_format:title":
        return {}, rng.choice(["Include a title wrapped in double angular brackets, such as <<my title>>.", None])
    if iid == "keywords:existence":
        k = {"keywords": rng.sample(KEYWORDS, rng.randint(1, 2))}
        return k, rng.choice([f"Include the keywords {' and '.join(k['keywords'])}.", None])
    if iid == "keywords:forbidden_words":
        k = {"forbidden_words": rng.sample(FORBIDDEN, rng.randint(2, 3))}
        return k, rng.choice([f"Do not use the words {', '.join(k['forbidden_words'])}.", None])
    if iid == "keywords:frequency":
        k = {"keyword": rng.choice(KEYWORDS), "frequency": rng.randint(2, 3), "relation": "at least"}
        return k, rng.choice([f"The word {k['keyword']} should appear at least {k['frequency']} times.", None])
    if iid == "keywords:letter_frequency":
        if rng.random() < 0.5:
            k = {"letter": rng.choice("zqxj"), "let_frequency": 2, "let_relation": "less than"}
        else:
            k = {"letter": rng.choice("aeost"), "let_frequency": rng.randint(3, 6), "let_relation": "at least"}
        rel = "fewer than" if k["let_relation"] == "less than" else "at least"
        return k, rng.choice([f"The letter {k['letter']} should appear {rel} {k['let_frequency']} times.", None])
    if iid == "language:response_language":
        code = rng.choice(sorted(LANGUAGES))
        return {"language": code}, (f"Your entire response should be in {LANGUAGES[code]}, no other language is "
                                    "allowed.")
    if iid == "length_constraints:number_sentences":
        k = rng.choice([{"num_sentences": rng.randint(3, 6), "relation": "at least"},
                        {"num_sentences": rng.randint(2, 4), "relation": "less than"}])
        rel = "fewer than" if k["relation"] == "less than" else "at least"
        return k, rng.choice([f"Answer in {rel} {k['num_sentences']} sentences.", None])
    if iid == "length_constraints:number_words":
        k = rng.choice([{"num_words": rng.choice([30, 40, 50, 60, 80]), "relation": "less than"},
                        {"num_words": rng.choice([40, 50, 60, 80]), "relation": "at least"}])
        rel = "fewer than" if k["relation"] == "less than" else "at least"
        return k, rng.choice([f"Answer with {rel} {k['num_words']} words.", None])
    if iid == "length_constraints:number_paragraphs":
        k = {"num_paragraphs": rng.randint(2, 3)}
        return k, rng.choice([f"There should be {k['num_paragraphs']} paragraphs, separated with the markdown "
                              "divider: ***", None])
    if iid == "length_constraints:nth_paragraph_first_word":
        n = rng.randint(2, 3)
        k = {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": rng.choice(KEYWORDS)}
        return k, None
    if iid == "punctuation:no_comma":
        return {}, rng.choice(["Do not use any commas in your response.", "Your answer must not contain a single comma.", None])
    if iid == "startend:end_checker":
        k = {"end_phrase": rng.choice(END_PHRASES)}
        return k, rng.choice([f"Finish your response with this exact phrase: {k['end_phrase']} No other words "
                              "should follow this phrase.", None])
    if iid == "startend:quotation":
        return {}, rng.choice(["Wrap your entire response with double quotation marks.", None])
    raise ValueError(iid)


# Instructions that can follow another one without contradicting it or the task.
SECOND = ["punctuation:no_comma", "change_case:english_lowercase", "length_constraints:number_words",
          "keywords:existence", "detectable_format:title", "detectable_content:postscript",
          "detectable_format:number_highlighted_sections", "startend:end_checker"]
CLASHES = {("change_case:english_lowercase", "change_case:english_capital"),
           ("change_case:english_lowercase", "change_case:capital_word_frequency"),
           ("change_case:english_lowercase", "language:response_language"),
           ("startend:end_checker", "detectable_content:postscript"),
           ("startend:end_checker", "startend:quotation"),
           ("startend:end_checker", "combination:two_responses"),
           ("detectable_format:title", "combination:repeat_prompt"),
           ("change_case:english_lowercase", "startend:end_checker")}
ALONE = {"detectable_format:constrained_response", "detectable_format:json_format", "combination:repeat_prompt",
         "combination:two_responses", "language:response_language", "length_constraints:nth_paragraph_first_word"}
YES_NO = ["Is {t} fun for children?", "Is {t} a good idea on a cold day?", "Would you enjoy {t}?"]


def _row(rng, key, all_ids):
    first = rng.choice(all_ids)
    topic = rng.choice(TOPICS)
    task = rng.choice(YES_NO if first == "detectable_format:constrained_response" else TASKS).format(t=topic)
    return instructed_row(rng, key, task[0].upper() + task[1:], first)


def instructed_row(rng, key, task, first):
    """An IFEval-schema row: the task, then the instruction `first` and, a third of the time, a second
    one that fits with it (each worded and given kwargs by _instruction)."""
    ids = [first]
    if first not in ALONE and rng.random() < 0.35:
        second = rng.choice([s for s in SECOND if s != first and (first, s) not in CLASHES and (s, first) not in CLASHES])
        ids.append(second)
    kwargs, texts = [], []
    for iid in ids:
        k, text = _instruction(iid, rng, task)
        kwargs.append(k)
        texts.append(text if text is not None else _official(iid, k))
    return {"key": key, "prompt": " ".join([task] + texts), "instruction_id_list": ids, "kwargs": kwargs}


_WORD = re.compile(r"[a-z]+")
_STOP = set("a an the of to in on for and or with about your you what is how why write short give describe "
            "explain one two three at be it that this as by from".split())


def _content_words(text):
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def task_topic(prompt):
    """The content words of a prompt's task: its first sentence (the instructions follow it)."""
    return _content_words(prompt.split(".")[0].split("?")[0])


def avoided_topics(paths):
    """The task topics of every row in the IFEval-schema files `paths`."""
    return [task_topic(json.loads(line)["prompt"])
            for path in paths for line in open(path, encoding="utf-8") if line.strip()]


def shares_topic(prompt, avoided):
    """True when the prompt's task shares two content words with one of the `avoided` topics."""
    topic = task_topic(prompt)
    return any(len(topic & a) >= 2 for a in avoided)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--avoid", nargs="*", default=["samples/ifeval/valid.jsonl", "samples/ifeval/heldout.jsonl"],
                        help="IFEval-schema files whose tasks no row may share a topic with")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    for path in args.avoid:
        if not os.path.isfile(path):
            parser.error(f"--avoid {path}: no such file")
    from localtune.eval.ifeval import registry

    avoided = avoided_topics(args.avoid)
    all_ids = sorted(registry())  # IFEval's 25 instructions
    rng = random.Random(args.seed)
    rows, seen, refused = [], set(), 0
    while len(rows) < args.rows:
        if refused > 50 * args.rows:  # the templates x topics cannot give that many distinct rows
            parser.error(f"only {len(rows)} distinct rows after {refused} refused draws; ask for fewer --rows")
        row = _row(rng, 5001 + len(rows), all_ids)
        if shares_topic(row["prompt"], avoided) or row["prompt"] in seen:
            refused += 1
            continue
        seen.add(row["prompt"])
        rows.append(row)
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, args.out)
    print(f"{len(rows)} rows to {args.out} ({refused} drawn rows refused: a topic shared with "
          f"{', '.join(args.avoid)} or a repeat)", file=sys.stderr)


if __name__ == "__main__":
    main()
