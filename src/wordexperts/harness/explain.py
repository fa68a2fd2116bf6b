"""``wordexperts explain``: a BERT-family explanation on the terminal and in files.

The data come from :func:`wordexperts.bert.explain.explain`, the table, JSON and figure from
:mod:`wordexperts.bert.render`; this module adds the command and :func:`save_page` (one
self-contained HTML file, :mod:`wordexperts.harness.page`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from wordexperts.bert.explain import Explanation, explain
from wordexperts.bert.files import SHIPPED
from wordexperts.bert.render import FORMATS, save_figure, save_json, table, to_dict
from wordexperts.bert.tokens import MASK_TOKEN
from wordexperts.harness.page import explain_page, write_page

DEFAULT_OUT = Path("runs") / "explain"


def save_page(ex: Explanation, path: str | Path, *, k: int = 3) -> Path:
    """Write the interactive page of :func:`to_dict` to ``path`` (atomically); returns it."""
    return write_page(explain_page(to_dict(ex, k=k)), path)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentence", help=f"a sentence with exactly one {MASK_TOKEN} token")
    parser.add_argument("--folder", type=Path, default=None,
                        help="local checkpoint folder of a BERT-family encoder (config.json, "
                             "model.safetensors, tokenizer.json or vocab.txt); instead of "
                             "--checkpoint")
    parser.add_argument("--checkpoint", choices=sorted(SHIPPED), default="all-minilm-l6-v2",
                        help="a checkpoint shipped by a package (all-mpnet-base-v2: make "
                             "mpnet) (default: all-minilm-l6-v2)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"folder for explain.json and the figure (default: {DEFAULT_OUT})")
    parser.add_argument("--top", type=int, default=3,
                        help="dominant words listed per head (default: 3)")
    parser.add_argument("--format", nargs="+", choices=FORMATS, default=["png"],
                        help="figure format(s) (default: png)")
    parser.add_argument("--html", action="store_true",
                        help="also write explain.html, an interactive page in one "
                             "self-contained file (it loads nothing)")
    parser.add_argument("--check", action="store_true",
                        help="also run transformers on the sentence and print the gaps "
                             "(imports transformers: a few seconds more)")


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise ValueError(f"--top must be a positive integer, got {args.top}")
    folder = args.folder if args.folder is not None else SHIPPED[args.checkpoint]()
    ex = explain(args.sentence, folder=folder, check=args.check)
    print(table(ex, k=args.top))
    written = [save_json(ex, Path(args.out) / "explain.json", k=args.top)]
    written += [save_figure(ex, Path(args.out) / f"explain.{fmt}") for fmt in args.format]
    if args.html:
        written.append(save_page(ex, Path(args.out) / "explain.html", k=args.top))
    print(f"\nwrote {', '.join(map(str, written))}")
    return 0
