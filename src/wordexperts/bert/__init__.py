"""BERT-family checkpoints read as mixtures of continuous word experts (docs/paper.md section 2)."""

from wordexperts.bert.checkpoint import BertCheckpoint, BertExperts, load_bert
from wordexperts.bert.tokens import MaskedSentence, encode_masked, load_tokenizer

__all__ = [
    "BertCheckpoint",
    "BertExperts",
    "MaskedSentence",
    "encode_masked",
    "load_bert",
    "load_tokenizer",
]
