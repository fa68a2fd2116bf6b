"""Planted analogies: do CBOW's and attention's fitted embeddings show them?
(docs/paper.md section 5)

The paper argues that linear word analogies follow from co-occurrence conditions alone for
CBOW-style models, while bidirectional attention needs much stronger conditions, because its
context weights are input-dependent gates. This module tests that on synthetic sentences
whose true word vectors are known and hold a set of analogies exactly.

**The planted vectors.** ``G`` groups (say countries) times ``R`` roles (country, capital,
currency, ...) give ``G*R`` analogy words ``rho[g, r] = u_g + o_r`` with group vectors ``u_g``
and role offsets ``o_r`` in orthogonal subspaces (regular simplices of norm ``1/sqrt(2)``, so
every word vector has norm 1), randomly rotated in ``R^k``, ``k = (G-1) + (R-1)``. Every
``(g1, r1) : (g1, r2) :: (g2, r1) : (g2, r2)`` is an exact parallelogram. ``F`` filler words
get random unit vectors.

**The sentences** (a latent discourse-vector model, Arora et al. style). Each sentence of
``L`` words has one discourse vector ``c ~ N(0, sigma^2 I_k)``; given ``c`` the words are
independent::

    p(x_j = w | c) ∝ exp(b_w + a_j(w) <rho_w, c>),      a_j(w) ∝ exp(alpha (s_w + p_j))

``a_j(w)`` is how strongly word ``w`` at position ``j`` follows the discourse (normalised to
mean 1 over words and positions): ``s`` is a per-word salience, ``p`` a per-position one.
Since the normalisers depend on ``c`` and ``j`` only, the masked-word conditional depends on
the context words exactly through the weighted sum ``sum_{j != i} a_j(x_j) rho_{x_j}``:

- ``alpha = 0``: every context word weighs the same, ``sum_{j != i} rho_{x_j}``: CBOW-like.
- ``alpha = 1``: the weight of a context word depends on the word and its position, as
  attention's gates do.

With ``salience="random"`` the word saliences ``s_w`` are independent of the planted vectors
(not an affine function of them); with ``salience="linear"`` they are ``<v, rho_w>``, an
affine function that gates computed from linear embeddings can express.

**The experiment.** For each ``alpha`` and seed, one corpus is sampled and a CBOW model
(:class:`~wordexperts.core.cbow.CBOW`, uniform weights) and a one-layer plain attention model
(:class:`~wordexperts.core.attention.BidirectionalAttention`, fitted with
:func:`~wordexperts.core.training.fit_mlm` single pass) are fitted on it with the same dimension,
initial word embeddings, optimiser and budget. Reported per model: the share of planted
analogy questions solved by 3CosAdd (:func:`wordexperts.analogy.evaluate`, all words as
candidates), the non-additive share of the analogy words' embeddings
(:func:`non_additive_share`, 0 for exact parallelograms) and the held-out pseudo-likelihood.
For attention also: its experts' vectors ``Wo Wv E[w]`` and how far its gates are from
uniform. ``wordexperts reproduce analogy-theory`` (:func:`configure`, :func:`run`) prints
the table, saves a plot and resumes from its results file.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wordexperts.analogy import evaluate
from wordexperts.core.attention import AttentionConfig, BidirectionalAttention
from wordexperts.core.cbow import CBOW, CBOWConfig
from wordexperts.core.experts import to_experts
from wordexperts.core.threads import single_thread
from wordexperts.core.training import fit_mlm
from wordexperts.datasets.planted import PlantedWorld, Salience, check_alpha, make_world
from wordexperts.harness.markdown import markdown_table
from wordexperts.harness.provenance import code_version
from wordexperts.harness.store import ResultStore, settings_key

MODELS = ("planted", "cbow", "attention", "attention-experts")
MODEL_LABELS = {
    "planted": "planted vectors",
    "cbow": "CBOW: E",
    "attention": "attention: E",
    "attention-experts": "attention: Wo Wv E",
}
RESULTS_FILE = "results.jsonl"
RESULT_KEY = ("model", "alpha", "seed", "settings")
REPORT_FILE = "report.md"
PLOT_FILE = "analogy_theory.png"


def non_additive_share(vectors: np.ndarray | torch.Tensor, world: PlantedWorld) -> float:
    """Share of the analogy words' embedding variance that is not ``group + role``.

    Fits ``vectors[g, r] ≈ m + U_g + O_r`` by least squares (two-way additive model) over
    the analogy words and returns ``|residual|^2 / |vectors - mean|^2``: 0 when every planted
    analogy is an exact parallelogram, whatever affine map the embeddings went through;
    about ``(G-1)(R-1)/(GR-1)`` for unstructured vectors.

    >>> world = make_world(seed=0)
    >>> non_additive_share(world.vectors, world) < 1e-12
    True
    """
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    x = np.asarray(vectors, dtype=np.float64)[world.analogy_ids()]              # (G, R, d)
    centred = x - x.mean(axis=(0, 1))
    additive = centred.mean(axis=1, keepdims=True) + centred.mean(axis=0, keepdims=True)
    total = float((centred ** 2).sum())
    return float(((centred - additive) ** 2).sum() / total) if total > 0 else float("nan")


def expert_vectors(model: BidirectionalAttention) -> torch.Tensor:
    """Each word's expert in the hidden space of a one-layer plain model: ``Wo Wv E[w]``.

    (V, d): the part of the expert ``nu(w, j) = Wo (Wv (E[w] + P[j]) + bv) + bo`` that
    depends on the word, summed over heads (docs/paper.md section 2); the position and bias
    terms are the same for every word. It is what a word adds to the mixture, as ``E[w]``
    is in CBOW.
    """
    attn = model.layers[0].self_attn
    d = model.config.d_model
    w_value = attn.in_proj_weight[2 * d:]
    return model.word_vectors() @ w_value.T @ attn.out_proj.weight.T


def gate_spread(model: BidirectionalAttention, x: np.ndarray | torch.Tensor) -> float:
    """Mean total-variation distance of attention's gates from CBOW's uniform weights.

    At each masked position ``i`` the gates over the context ``j != i`` (renormalised,
    leaving out the masked slot) are compared with ``1/(L-1)``; averaged over heads,
    positions and rows of ``x``. 0 means the model weighs its context like CBOW.
    """
    gates = to_experts(model).gates(torch.as_tensor(x))                       # (B, H, L, L)
    length = gates.shape[-1]
    off = ~torch.eye(length, dtype=torch.bool)
    context = gates[..., off].view(*gates.shape[:-1], length - 1)
    context = context / context.sum(-1, keepdim=True)
    return float(0.5 * (context - 1.0 / (length - 1)).abs().sum(-1).mean())


def heldout_nll(model: torch.nn.Module, x: np.ndarray | torch.Tensor) -> float:
    """Mean ``-log p(x_i | x_-i)`` over the positions of rows ``x`` (nats per word)."""
    x = torch.as_tensor(x)
    with torch.no_grad():
        log_probs = model.masked_log_probs(x)
    return float(-log_probs.gather(-1, x.unsqueeze(-1)).mean())


def analogy_scores(vectors: np.ndarray | torch.Tensor, world: PlantedWorld) -> dict[str, float]:
    """3CosAdd on the planted questions (every word a candidate) and the non-additive share."""
    if isinstance(vectors, torch.Tensor):
        vectors = vectors.detach().cpu().numpy()
    result = evaluate((list(world.words), vectors), world.questions(), case_insensitive=False)
    return {"accuracy": result.accuracy, "mean_cosine": result.mean_cosine,
            "non_additive": non_additive_share(vectors, world)}


# --------------------------------------------------------------------------- experiment


@dataclass(frozen=True)
class TheorySettings:
    """Everything that fixes a run, except ``alpha`` and the seed.

    ``d_model=None`` gives both models the planted dimension ``k``, so no embedding direction
    is left undetermined by the data (see ``docs/analogy-theory.md``). ``init_std=None``
    keeps the library's initial word embeddings (``N(0, 1)``); a number draws them from
    ``N(0, init_std^2)`` instead (the same draw for both models).
    """

    n_groups: int = 8
    n_roles: int = 5
    n_filler: int = 24
    seq_len: int = 8
    discourse_scale: float = 2.0
    word_salience: float = 0.4
    position_salience: float = 0.5
    salience: Salience = "random"
    n_sentences: int = 10_000
    n_test: int = 2_000
    d_model: int | None = None
    init_std: float | None = None
    n_heads: int = 1
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-2

    def world(self, seed: int) -> PlantedWorld:
        return make_world(n_groups=self.n_groups, n_roles=self.n_roles, n_filler=self.n_filler,
                          seq_len=self.seq_len, discourse_scale=self.discourse_scale,
                          word_salience=self.word_salience,
                          position_salience=self.position_salience, salience=self.salience,
                          seed=seed)


def fit_one(model_name: str, world: PlantedWorld, x_train: np.ndarray, x_test: np.ndarray, *,
            settings: TheorySettings, seed: int, progress: bool = False) -> list[dict]:
    """Fit ``"cbow"`` or ``"attention"`` on ``x_train`` and score it: one record per result.

    Both models start from the same word embeddings (the first parameters drawn after
    ``torch.manual_seed(seed)``, or ``settings.init_std`` times one seeded normal draw) and
    get the same optimiser and budget.
    """
    d = settings.d_model or world.dim
    torch.manual_seed(seed)
    if model_name == "cbow":
        model = CBOW(CBOWConfig(vocab_size=world.vocab_size, seq_len=world.seq_len, d_model=d))
    elif model_name == "attention":
        model = BidirectionalAttention(AttentionConfig(
            vocab_size=world.vocab_size, seq_len=world.seq_len, d_model=d,
            n_heads=settings.n_heads))
    else:
        raise ValueError(f"model_name must be 'cbow' or 'attention', got {model_name!r}")
    if settings.init_std is not None:
        generator = torch.Generator().manual_seed(seed)
        init = settings.init_std * torch.randn(world.vocab_size, d, generator=generator)
        with torch.no_grad():
            model.word_embeddings.weight[: world.vocab_size] = init
    start = time.perf_counter()
    history = fit_mlm(model, x_train, method="single_pass", epochs=settings.epochs,
                      batch_size=settings.batch_size, lr=settings.lr, seed=seed,
                      progress=progress)
    seconds = time.perf_counter() - start
    common = {"train_nll": history[-1], "test_nll": heldout_nll(model, x_test),
              "seconds": seconds}
    with torch.no_grad():
        records = [{"model": model_name, **analogy_scores(model.word_vectors(), world),
                    **common}]
        if model_name == "attention":
            records[0]["gate_spread"] = gate_spread(model, x_test)
            records.append({"model": "attention-experts",
                            **analogy_scores(expert_vectors(model), world), **common})
    return records


def results_key(settings: TheorySettings) -> str:
    """The part of a stored result's key that says what produced it: the settings and the
    version of the model code (:func:`~wordexperts.harness.provenance.code_version`), so a
    change of either refits."""
    return settings_key({"settings": dataclasses.asdict(settings), "code": code_version()})


def run_experiment(
    settings: TheorySettings | None = None,
    *,
    alphas: Sequence[float] = (0.0, 0.25, 0.5, 0.75, 1.0),
    seeds: Sequence[int] = (0, 1, 2),
    out: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Fit both models for every ``alpha`` and seed; one row per (model, alpha, seed).

    With ``out``, each fitted model's results are appended to ``out/results.jsonl`` (a
    :class:`~wordexperts.harness.store.ResultStore` keyed by model, alpha, seed and
    :func:`results_key` of ``settings``) as soon as they are
    known, and results already there are not recomputed. The planted vectors' own scores
    (``model="planted"``) are computed, never stored.
    """
    settings = settings or TheorySettings()
    alphas = [check_alpha(a) for a in alphas]
    if not seeds:
        raise ValueError("seeds must not be empty")
    key = results_key(settings)
    store = ResultStore(Path(out) / RESULTS_FILE, key=RESULT_KEY) if out is not None else None
    records = [r for r in store.records() if r.get("settings") == key] if store else []
    done = {(r["model"], r["alpha"], r["seed"]) for r in records}

    for seed in seeds:
        world = settings.world(seed)
        truth = analogy_scores(world.vectors, world)
        records += [{"model": "planted", "alpha": a, "seed": seed, **truth} for a in alphas]
        for alpha in alphas:
            todo = [m for m in ("cbow", "attention") if (m, alpha, seed) not in done]
            if not todo:
                continue
            x = world.sample(settings.n_sentences + settings.n_test, alpha=alpha, seed=seed)
            x_train, x_test = x[: settings.n_sentences], x[settings.n_sentences:]
            for name in todo:
                new = fit_one(name, world, x_train, x_test, settings=settings, seed=seed)
                new = [{**r, "alpha": alpha, "seed": seed, "settings": key} for r in new]
                for record in new if store else ():
                    store.append(record)
                records += new
                if progress:
                    r = new[0]
                    print(f"  alpha={alpha:.2f} seed={seed} {name:9s} analogies "
                          f"{r['accuracy']:.3f}  non-additive {r['non_additive']:.3f}  "
                          f"held-out nll {r['test_nll']:.3f}  ({r['seconds']:.1f}s)",
                          flush=True)
    table = pd.DataFrame(records)
    keep = table["alpha"].isin(alphas) & table["seed"].isin(list(seeds))
    return table[keep].drop(columns=["settings"], errors="ignore").reset_index(drop=True)


def summarize(results: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """Mean, standard deviation, min and max of ``metric`` over seeds, per model and alpha."""
    rows = results.dropna(subset=[metric])
    table = rows.groupby(["model", "alpha"])[metric].agg(["mean", "std", "min", "max", "count"])
    order = [m for m in MODELS if m in table.index.get_level_values(0)]
    return table.loc[order]


def summary_table(results: pd.DataFrame, metric: str = "accuracy") -> pd.DataFrame:
    """``metric`` per alpha (rows) and model (columns): ``mean ± sd [min, max]`` over seeds.

    A frame for :func:`~wordexperts.harness.markdown.markdown_table`.
    """
    summary = summarize(results, metric)
    models = list(dict.fromkeys(summary.index.get_level_values(0)))
    alphas = sorted(set(summary.index.get_level_values(1)))
    rows = []
    for a in alphas:
        row = {"alpha": f"{a:.2f}"}
        for m in models:
            if (m, a) not in summary.index:
                row[MODEL_LABELS[m]] = ""
                continue
            s = summary.loc[(m, a)]
            sd = 0.0 if np.isnan(s["std"]) else s["std"]
            row[MODEL_LABELS[m]] = f"{s['mean']:.3f} ± {sd:.3f} [{s['min']:.3f}, {s['max']:.3f}]"
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(results: pd.DataFrame, metric: str = "accuracy", *,
                       model: str = "attention", baseline: str = "cbow") -> pd.DataFrame:
    """``model - baseline`` per alpha, paired by seed (same world, corpus and initial ``E``).

    Columns: ``mean``, ``min``, ``max`` of the differences, ``lower`` (seeds where ``model``
    scored lower) and ``n`` (seeds).
    """
    wide = results.pivot_table(index=["alpha", "seed"], columns="model", values=metric)
    diff = (wide[model] - wide[baseline]).dropna()
    groups = diff.groupby(level="alpha")
    return pd.DataFrame({"mean": groups.mean(), "min": groups.min(), "max": groups.max(),
                         "lower": groups.apply(lambda d: int((d < 0).sum())),
                         "n": groups.size()})


def paired_table(results: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Attention minus CBOW for each of ``metrics`` (columns) per alpha (rows):
    ``mean [min, max] (lower in k/n)``; a frame for ``markdown_table``."""
    parts = [paired_differences(results, m) for m in metrics]
    rows = []
    for a in parts[0].index:
        row = {"alpha": f"{a:.2f}"}
        for metric, d in zip(metrics, parts, strict=True):
            row[metric] = (f"{d.loc[a, 'mean']:+.3f} [{d.loc[a, 'min']:+.3f}, "
                           f"{d.loc[a, 'max']:+.3f}] (lower in {d.loc[a, 'lower']}/"
                           f"{d.loc[a, 'n']})")
        rows.append(row)
    return pd.DataFrame(rows)


def plot(results: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Save a three-panel figure: analogies solved, non-additive share, and the held-out
    NLL of attention minus CBOW (paired by seed). Lines: means; bands: min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"planted": "black", "cbow": "tab:blue", "attention": "tab:red",
              "attention-experts": "tab:orange"}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    panels = [("accuracy", "planted analogies solved (3CosAdd, rank 1)"),
              ("non_additive", "non-additive share of the analogy words' embeddings")]
    for ax, (metric, label) in zip(axes, panels, strict=False):
        summary = summarize(results, metric).reset_index()
        for model, part in summary.groupby("model", sort=False):
            style = "--" if model == "planted" else "-"
            ax.plot(part["alpha"], part["mean"], style, marker="o", color=colors[model],
                    label=MODEL_LABELS[model])
            ax.fill_between(part["alpha"], part["min"], part["max"], color=colors[model],
                            alpha=0.15, linewidth=0)
        ax.set_title(label, fontsize=10)
    nll = paired_differences(results, "test_nll")
    axes[2].plot(nll.index, nll["mean"], "-", marker="o", color="tab:purple")
    axes[2].fill_between(nll.index, nll["min"], nll["max"], color="tab:purple", alpha=0.15,
                         linewidth=0)
    axes[2].axhline(0, color="grey", linewidth=1)
    axes[2].set_title("held-out -log p(x_i | x_-i): attention minus CBOW (nats)", fontsize=10)
    for ax in axes:
        ax.set_xlabel("alpha (0: CBOW-like data, 1: attention-like data)")
        ax.grid(alpha=0.3)
    low = summarize(results, "accuracy")["min"].min()
    axes[0].set_ylim(max(0.0, low - 0.05), 1.005)
    axes[0].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --------------------------------------------------------------------------- command line


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``wordexperts reproduce analogy-theory``."""
    defaults = TheorySettings()
    parser.add_argument("--seeds", type=int, default=3, metavar="K",
                        help="number of seeds 0..K-1 (default 3)")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                        metavar="A", help="knob values in [0, 1] (default 0 .25 .5 .75 1)")
    parser.add_argument("--out", default="runs/analogy-theory", metavar="DIR",
                        help="results file and plot folder (default runs/analogy-theory)")
    parser.add_argument("--salience", choices=["random", "linear"], default=defaults.salience,
                        help="word saliences independent of the planted vectors (random) or "
                             "an affine function of them (linear); default random")
    parser.add_argument("--word-salience", type=float, default=defaults.word_salience,
                        metavar="S", help="standard deviation of the word saliences s "
                        f"(default {defaults.word_salience}; 0: position weights only)")
    parser.add_argument("--position-salience", type=float, default=defaults.position_salience,
                        metavar="S", help="standard deviation of the position saliences p "
                        f"(default {defaults.position_salience}; 0: word weights only)")
    parser.add_argument("--sentences", type=int, default=defaults.n_sentences, metavar="N",
                        help=f"training sentences per corpus (default {defaults.n_sentences})")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"training epochs of each model (default {defaults.epochs})")
    parser.add_argument("--d-model", type=int, default=None, metavar="D",
                        help="embedding dimension of both models (default: the planted "
                             "dimension k)")
    parser.add_argument("--init-std", type=float, default=None, metavar="S",
                        help="standard deviation of the initial word embeddings of both "
                             "models (default: the library's, 1)")


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces ``args`` (options at their defaults left out)."""
    parser = argparse.ArgumentParser()
    configure(parser)
    defaults = vars(parser.parse_args([]))
    parts = ["wordexperts reproduce analogy-theory"]
    for name, value in vars(args).items():
        if name in defaults and value != defaults[name]:
            flag = "--" + name.replace("_", "-")
            shown = " ".join(map(str, value)) if isinstance(value, list) else value
            parts.append(f"{flag} {shown}")
    return " ".join(parts)


def run(args: argparse.Namespace) -> int:
    """Run the experiment, write ``report.md`` and the plot into ``--out``, print the report."""
    for flag, value in (("--seeds", args.seeds), ("--sentences", args.sentences),
                        ("--epochs", args.epochs)):
        if value < 1:
            raise ValueError(f"{flag} must be a positive integer, got {value}")
    if args.init_std is not None and not args.init_std > 0:
        raise ValueError(f"--init-std must be positive, got {args.init_std}")
    alphas = [check_alpha(a) for a in args.alphas]
    settings = replace(TheorySettings(), salience=args.salience,
                       word_salience=args.word_salience,
                       position_salience=args.position_salience, n_sentences=args.sentences,
                       epochs=args.epochs, d_model=args.d_model, init_std=args.init_std)
    world = settings.world(0)
    start = time.perf_counter()
    with single_thread():
        results = run_experiment(settings, alphas=alphas, seeds=range(args.seeds),
                                 out=args.out)
    pairs = [("cbow", "attention")]
    sections = [
        (f"Planted analogies solved (share of {len(world.questions())} questions; "
         f"mean ± sd [min, max] over {args.seeds} seeds)", summary_table(results, "accuracy")),
        ("Non-additive share of the analogy words' embeddings (0 = exact parallelograms)",
         summary_table(results, "non_additive")),
        ("Held-out pseudo-likelihood, -log p(x_i | x_-i) per word (nats)",
         summary_table(results[results["model"].isin(pairs[0])], "test_nll")),
        ("Attention's gates: total variation from uniform (0 = CBOW's weights)",
         summary_table(results[results["model"] == "attention"], "gate_spread")),
        ("Attention (E) minus CBOW (E), paired by seed: mean [min, max] (attention lower in "
         "k of n seeds)", paired_table(results, ["accuracy", "non_additive", "test_nll"])),
    ]
    lines = ["# Planted analogies: CBOW versus attention", "",
             f"Command: `{_command(args)}`", "",
             f"Planted world: {world.vocab_size} words ({world.n_groups} groups x "
             f"{world.n_roles} roles + fillers), k={world.dim}, {len(world.questions())} "
             f"analogy questions, L={world.seq_len}; {settings.n_sentences} training "
             f"sentences; d_model={settings.d_model or world.dim}, initial embeddings sd "
             f"{1 if settings.init_std is None else settings.init_std}; "
             f"salience={settings.salience} (word {settings.word_salience}, position "
             f"{settings.position_salience}). Settings key {results_key(settings)}."]
    for heading, table in sections:
        lines += ["", f"## {heading}", "", markdown_table(table)]
    chance = 1.0 / (world.vocab_size - 3)
    plot(results, Path(args.out) / PLOT_FILE,
         title=f"planted analogies, salience={settings.salience} (word "
               f"{settings.word_salience}, position {settings.position_salience}), "
               f"d_model={settings.d_model or world.dim} (k={world.dim}), "
               f"{settings.n_sentences} sentences, {args.seeds} seeds; "
               f"band: min-max; chance accuracy {chance:.3f}")
    lines += ["", f"Results: `{RESULTS_FILE}`; plot: `{PLOT_FILE}`.",
              "", f"![planted analogies]({PLOT_FILE})", ""]
    report = Path(args.out) / REPORT_FILE
    report.write_text("\n".join(lines))
    print(report.read_text())
    print(f"time: {time.perf_counter() - start:.0f}s")
    return 0
