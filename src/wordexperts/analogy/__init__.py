"""Linear word analogies (paper section 5, Tables 1 and 2): questions, embeddings, evaluation."""

from wordexperts.analogy.embeddings import (
    as_embeddings,
    bert_input_embeddings,
    fold_bpe_tokens,
    glove_6b_50d,
    is_whole_word,
    load_word2vec_format,
    paper_word_block,
)
from wordexperts.analogy.evaluation import AnalogyResult, Protocol, Score, evaluate
from wordexperts.analogy.questions import common_questions, load_questions, questions_path

__all__ = [
    "AnalogyResult",
    "Protocol",
    "Score",
    "as_embeddings",
    "bert_input_embeddings",
    "common_questions",
    "evaluate",
    "fold_bpe_tokens",
    "glove_6b_50d",
    "is_whole_word",
    "load_questions",
    "load_word2vec_format",
    "paper_word_block",
    "questions_path",
]
