"""The Google analogy questions (paper section 5, Tables 1 and 2) and their common subsets.

A question ``(a, b, c, d)`` reads "a is to b as c is to d" ("athens : greece :: baghdad :
iraq"). :func:`load_questions` parses the set gensim ships offline; :func:`common_questions`
keeps the questions every vocabulary covers, to compare embeddings on the same questions
as the paper did.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

QUESTION_COLUMNS = ("category", "type", "a", "b", "c", "d")
TYPES = ("semantic", "syntactic", "all")


def require(module: str, package: str, what: str) -> None:
    """An ImportError naming ``package`` when ``module`` is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the package {package!r}: pip install {package}")


def questions_path() -> Path:
    """Path of ``questions-words.txt`` inside the installed gensim package (not imported)."""
    require("gensim", "gensim", "the Google analogy questions")
    spec = importlib.util.find_spec("gensim")
    for root in spec.submodule_search_locations or []:
        path = Path(root) / "test" / "test_data" / "questions-words.txt"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "questions-words.txt is missing from the installed gensim; reinstall it: "
        "pip install --force-reinstall gensim"
    )


def load_questions(path: str | Path | None = None, *, lowercase: bool = True) -> pd.DataFrame:
    """The Google analogy questions, one row per question.

    Columns ``category, type, a, b, c, d``; ``type`` is ``"syntactic"`` for the ``gram*``
    categories and ``"semantic"`` otherwise. Parsed like gensim: ``": name"`` lines open a
    category, lines without exactly four words are skipped. Words are lowercased unless
    ``lowercase=False``.

    >>> q = load_questions()
    >>> len(q), q["category"].nunique(), int((q["type"] == "syntactic").sum())
    (19544, 14, 10675)
    >>> q.iloc[0].tolist()
    ['capital-common-countries', 'semantic', 'athens', 'greece', 'baghdad', 'iraq']
    """
    path = questions_path() if path is None else Path(path)
    rows: list[tuple[str, ...]] = []
    category = None
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.startswith(": "):
            category = line[2:].strip()
            continue
        parts = line.split()
        if len(parts) != 4:
            continue
        if category is None:
            raise ValueError(f"path: question on line {line_no} before any ': category' line")
        kind = "syntactic" if category.startswith("gram") else "semantic"
        rows.append((category, kind, *(w.lower() if lowercase else w for w in parts)))
    return pd.DataFrame(rows, columns=list(QUESTION_COLUMNS))


def check_questions(questions: Any) -> pd.DataFrame:
    """``questions`` with a fresh index; an error naming what is missing when it is not a
    DataFrame with the columns ``category, type, a, b, c, d``."""
    if not isinstance(questions, pd.DataFrame):
        raise ValueError(f"questions: expected a DataFrame, got {type(questions).__name__}")
    missing = [c for c in QUESTION_COLUMNS if c not in questions.columns]
    if missing:
        raise ValueError(f"questions: missing column(s) {missing}")
    return questions.reset_index(drop=True)


def vocabulary_of(obj: Any) -> list[str]:
    """The words of embeddings (a ``(words, vectors)`` pair, a gensim ``KeyedVectors``) or
    of a plain iterable of words."""
    if isinstance(obj, tuple) and len(obj) == 2 and not isinstance(obj[1], str):
        return list(map(str, obj[0]))
    if hasattr(obj, "index_to_key"):
        return list(obj.index_to_key)
    if isinstance(obj, Iterable) and not isinstance(obj, str):
        return [str(w) for w in obj]
    raise ValueError(f"vocabularies: expected embeddings or words, got {type(obj).__name__}")


def common_questions(
    questions: pd.DataFrame, *vocabularies: Any, case_insensitive: bool = True,
    distinct: bool = False,
) -> pd.DataFrame:
    """The questions whose four words every vocabulary covers (the paper compared its
    embeddings on such a common subset). A vocabulary is anything :func:`evaluate` accepts
    or a plain list of words.

    ``distinct=True`` also keeps only the first of the questions with the same four words
    (the Google set asks 171 questions twice, in ``capital-common-countries`` and again in
    ``capital-world``), as the paper's inner join did (``drop_duplicates(['task'])``).

    >>> q = load_questions()
    >>> both = common_questions(q, ["athens", "greece", "baghdad", "iraq"],
    ...                         ["Athens", "Greece", "Baghdad", "Iraq", "Paris"])
    >>> both[["category", "a", "b", "c", "d"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
    [['capital-common-countries', 'athens', 'greece', 'baghdad', 'iraq'],
     ['capital-common-countries', 'baghdad', 'iraq', 'athens', 'greece'],
     ['capital-world', 'athens', 'greece', 'baghdad', 'iraq']]
    >>> len(common_questions(both, distinct=True))
    2
    """
    questions = check_questions(questions)
    fold = str.upper if case_insensitive else str
    keep = np.ones(len(questions), dtype=bool)
    for vocabulary in vocabularies:
        known = {fold(w) for w in vocabulary_of(vocabulary)}
        for column in "abcd":
            keep &= np.array([fold(w) in known for w in questions[column].tolist()], dtype=bool)
    if distinct:
        keep &= ~questions[list("abcd")].map(fold).duplicated().to_numpy()
    return questions[keep].reset_index(drop=True)
