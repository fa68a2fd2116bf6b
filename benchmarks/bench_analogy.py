"""Analogy evaluation: wordexperts.analogy.evaluate versus gensim, side by side in one run.

The acceptance setting: GloVe 6B 50d restricted to its 30,000 most frequent words, all
19,544 Google questions (14,877 evaluated), gensim's
``KeyedVectors.evaluate_word_analogies(restrict_vocab=30000)``. gensim runs once with its
BLAS as installed (OpenBLAS, 2 threads: about a minute, skip with --no-gensim-default) and
once limited to one BLAS thread; ours runs its score blocks on one torch thread (it sets
that itself). Also the MiniLM whole-word input embeddings (384-d), ours against gensim with
one BLAS thread. The verdicts of both are compared question by question. Last, ours under
the paper's protocol (MiniLM, all 30,522 tokens as candidates), 3CosAdd and 3CosMul.

    .venv/bin/python benchmarks/bench_analogy.py [--repeats 3] [--no-gensim-default]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from threadpoolctl import threadpool_limits

from wordexperts.analogy import (
    bert_input_embeddings,
    evaluate,
    glove_6b_50d,
    load_questions,
    paper_word_block,
    questions_path,
)
from wordexperts.harness.provenance import environment

RESULTS = Path(__file__).parent / "results" / "bench_analogy.json"


def gensim_run(words, vectors, restrict_vocab, blas_threads):
    kv = KeyedVectors(vectors.shape[1])
    kv.add_vectors(words, vectors)
    with threadpool_limits(blas_threads):
        start = time.perf_counter()
        score, sections = kv.evaluate_word_analogies(str(questions_path()),
                                                     restrict_vocab=restrict_vocab)
        seconds = time.perf_counter() - start
    verdicts = {}
    for s in sections[:-1]:
        verdicts.update({(s["section"], *quad): True for quad in s["correct"]})
        verdicts.update({(s["section"], *quad): False for quad in s["incorrect"]})
    return seconds, score, verdicts


def ours(embeddings, questions, repeats, **kwargs):
    evaluate(embeddings, questions.iloc[:500], **kwargs)  # warm-up
    runs = [evaluate(embeddings, questions, **kwargs) for _ in range(repeats)]
    result = runs[0]
    q = result.questions
    verdicts = {(c, *(w.upper() for w in abcd)): ok for c, *abcd, ok in
                zip(q["category"], q["a"], q["b"], q["c"], q["d"], q["correct"], strict=True)}
    return statistics.median(r.seconds for r in runs), result, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-gensim-default", action="store_true",
                        help="skip gensim with its default BLAS threads (about a minute)")
    args = parser.parse_args()
    questions = load_questions()
    results: dict[str, float | int | bool] = {}
    print("setting                                   time (s)   accuracy   questions")

    glove = glove_6b_50d(top=30000)
    seconds, result, mine = ours(glove, questions, args.repeats)
    results["glove30k_ours_s"] = seconds
    print(f"GloVe 50d top 30k, ours                  {seconds:8.3f}   "
          f"{result.accuracy:.4f}     {result.n_questions}")
    results["glove30k_accuracy"] = result.accuracy
    results["glove30k_questions"] = result.n_questions
    blas = [1] if args.no_gensim_default else [1, None]
    for threads in blas:
        seconds, score, theirs = gensim_run(*glove, 30000, threads)
        label = "1 BLAS thread" if threads else "default BLAS"
        results[f"glove30k_gensim_{'1thread' if threads else 'default'}_s"] = seconds
        print(f"GloVe 50d top 30k, gensim, {label:14s} {seconds:8.3f}   {score:.4f}     "
              f"{len(theirs)}")
        same = theirs == mine and score == result.accuracy
        results["glove30k_same_verdicts"] = results.get("glove30k_same_verdicts", True) and same
    for key in ("1thread", "default"):
        if f"glove30k_gensim_{key}_s" in results:
            ratio = results[f"glove30k_gensim_{key}_s"] / results["glove30k_ours_s"]
            results[f"glove30k_ratio_gensim_{key}_vs_ours"] = ratio
            label = "one BLAS thread" if key == "1thread" else "default BLAS threads"
            print(f"  speed-up vs gensim ({label}): {ratio:.1f}x")
    print(f"  same verdicts on every question: {results['glove30k_same_verdicts']}")

    minilm = bert_input_embeddings()
    seconds, result, mine = ours(minilm, questions, args.repeats)
    results.update(minilm_ours_s=seconds, minilm_accuracy=result.accuracy,
                   minilm_mean_cosine=result.mean_cosine, minilm_questions=result.n_questions)
    print(f"MiniLM 384-d whole words, ours           {seconds:8.3f}   {result.accuracy:.4f}"
          f"     {result.n_questions}")
    seconds, score, theirs = gensim_run(*minilm, None, 1)
    results["minilm_gensim_1thread_s"] = seconds
    results["minilm_same_verdicts"] = theirs == mine and score == result.accuracy
    print(f"MiniLM 384-d whole words, gensim, 1 BLAS  {seconds:8.3f}   {score:.4f}     "
          f"{len(theirs)}")
    ratio = results["minilm_gensim_1thread_s"] / results["minilm_ours_s"]
    results["minilm_ratio_gensim_1thread_vs_ours"] = ratio
    print(f"  speed-up: {ratio:.1f}x; same verdicts: {results['minilm_same_verdicts']}")
    seconds = ours(glove, questions, args.repeats, dtype=np.float64)[0]
    results["glove30k_ours_float64_s"] = seconds
    print(f"GloVe 50d top 30k, ours in float64       {seconds:8.3f}")

    # the paper's protocol: all 30,522 tokens as candidates, the word block as questions
    tokens, table = bert_input_embeddings(tokens="all")
    words = [tokens[i] for i in paper_word_block(tokens)]
    for score in ("3cosadd", "3cosmul"):
        seconds, result, _ = ours((tokens, table), questions, args.repeats, protocol="paper",
                                  score=score, question_words=words)
        results[f"minilm_paper_{score}_s"] = seconds
        results[f"minilm_paper_{score}_accuracy"] = result.accuracy
        print(f"MiniLM all tokens, paper {score}, ours   {seconds:8.3f}   "
              f"{result.accuracy:.4f}     {result.n_questions}")
    RESULTS.parent.mkdir(exist_ok=True)
    results["environment"] = environment()
    RESULTS.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
