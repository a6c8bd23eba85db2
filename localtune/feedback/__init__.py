"""Feedback: a model's answers -> labels (a person, an AI judge under a constitution, critique and
revise) -> preference pairs and SFT rows for `train dpo` / `train sft` (and reward models).

    session.py       FeedbackSession: the session directory (manifest, candidates, labels log, lock)
    sample.py        sample_candidates / sample_session / sample_for_run: candidate answers
    labels.py        the labels log's records and their replay (LabelState)
    rating.py        Rater: the keys of rating, shared by the plain terminal and the TUI
    constitution.py  Constitution / Principle / load_constitution (YAML, file:line errors)
    judge.py         Judge (compare, compare_many, win_rates), Verdict, adapters_off, AdapterSwap
    judging.py       judge_session, judge_pairs_file, JudgeReport (consistency, agreement)
    critique.py      critique_revise / critique_session (Constitutional AI's supervised stage)
    export.py        export_session / session_rows: pairs and SFT rows
Heavy modules (judge, sample, critique) import MLX when called, so rating and export stay light.
"""

from localtune.feedback.constitution import Constitution, Principle, load_constitution, parse_constitution
from localtune.feedback.export import ExportReport, export_session, session_rows
from localtune.feedback.labels import LabelState, replay
from localtune.feedback.rating import Progress, Rater, Reply
from localtune.feedback.session import Candidate, FeedbackSession, PromptItem, SessionError, is_session, list_sessions

__all__ = [
    "Candidate", "Constitution", "ExportReport", "FeedbackSession", "LabelState", "Principle", "Progress",
    "PromptItem", "Rater", "Reply", "SessionError", "export_session", "is_session", "list_sessions",
    "load_constitution", "parse_constitution", "replay", "session_rows",
]
