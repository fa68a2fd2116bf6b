"""Linear word analogies (paper section 5, Tables 1 and 2): questions, embeddings, evaluation."""

from wordexperts.analogy.evaluation import (
    AnalogyResult,
    as_embeddings,
    bert_input_embeddings,
    common_questions,
    evaluate,
    glove_6b_50d,
    is_whole_word,
    load_questions,
    load_word2vec_format,
    questions_path,
)

__all__ = [
    "AnalogyResult",
    "as_embeddings",
    "bert_input_embeddings",
    "common_questions",
    "evaluate",
    "glove_6b_50d",
    "is_whole_word",
    "load_questions",
    "load_word2vec_format",
    "questions_path",
]
