"""The one pipeline of the tabular out-of-distribution reproductions (paper Tables 3-5).

A :class:`Reproduction` names what differs between ``reproduce table5`` and
``reproduce tables34``: its data loader, configurations, seeds, default methods, the paper's
published runs and the report's notes. Its :meth:`~Reproduction.configure` adds the shared
options and :meth:`~Reproduction.run` checks every argument (and each method's settings)
before anything is written, runs the missing fits on Dask
(:func:`~wordexperts.harness.store.run_grid`) and writes the report
(:func:`~wordexperts.harness.report.write_report`).

The paper's figures ship with the package (``wordexperts/harness/paper/``), so reports
compare with the paper without the authors' repository: :func:`paper_runs`.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from wordexperts.harness.baselines import PEERS, peers_available
from wordexperts.harness.methods import get_methods
from wordexperts.harness.report import PAPER_COLUMNS, write_report
from wordexperts.harness.store import DataFn, add_runner_arguments, positive_int, run_grid

# The authors' names of the methods in their per-seed result files.
_PAPER_SUFFIX = {"lr": "lr", "rf": "rf", "gb": "gb", "mlp": "mlp", "attention": "at"}


def paper_runs(table: str) -> pd.DataFrame:
    """The paper's published runs of ``table`` (``"tables34"`` or ``"table5"``): one row per
    (config, method, seed) with test accuracy and MSE (and train figures where published).

    Tables 3-4: the authors' per-seed results, 20 seeds per configuration; Table 5: one run
    per method at their seed 42.

    >>> runs = paper_runs("tables34")
    >>> len(runs), runs["seed"].nunique()
    (1200, 20)
    """
    return _read_paper_runs(table).copy()


@functools.cache
def _read_paper_runs(table: str) -> pd.DataFrame:
    root = resources.files("wordexperts.harness") / "paper"
    if table == "table5":
        with (root / "auto-mpg.csv").open() as f:
            return pd.read_csv(f).assign(config="auto-mpg")
    if table != "tables34":
        raise ValueError(f"table must be 'tables34' or 'table5', got {table!r}")
    frames = []
    for entry in sorted((root / "tabular-simulation").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith("_True_10.csv"):
            continue
        with entry.open() as f:
            wide = pd.read_csv(f, index_col=0)
        config = entry.name.removesuffix("_True_10.csv")
        for method, suffix in _PAPER_SUFFIX.items():
            columns = {f"{m}_{split}_{suffix}": f"{m}_{split}"
                       for m in ("acc", "mse") for split in ("train", "test")}
            part = wide[["seed", *columns]].rename(columns=columns)
            frames.append(part.assign(config=config, method=method))
    runs = pd.concat(frames, ignore_index=True)
    return runs[[*PAPER_COLUMNS, "acc_train", "mse_train"]]


@dataclass(frozen=True)
class Reproduction:
    """One ``wordexperts reproduce`` command over tabular data.

    ``load(config, seed)`` gives ``(train, test)`` (a module-level function: Dask workers
    import it); ``configs`` are the configurations it can run (``--configs`` is offered when
    there is more than one; ``check_config`` rejects a bad name before anything runs);
    ``seeds(k)`` are the first ``k`` seeds; ``paper`` names its table in :func:`paper_runs`.
    """

    name: str
    title: str
    load: DataFn
    configs: tuple[str, ...]
    default_methods: tuple[str, ...]
    seeds: Callable[[int], list[int]]
    default_seeds: int
    seeds_help: str
    paper: str
    notes: tuple[str, ...]
    check_config: Callable[[str], object] | None = None

    def configure(self, parser: argparse.ArgumentParser) -> None:
        """The command's options: configurations, seeds, methods, and the runner's."""
        if len(self.configs) > 1:
            parser.add_argument("--configs", nargs="+", default=list(self.configs),
                                metavar="CONFIG",
                                help=f"configurations (default: all {len(self.configs)})")
        parser.add_argument("--seeds", type=positive_int, default=self.default_seeds,
                            metavar="K", help=f"{self.seeds_help} (default: "
                                              f"{self.default_seeds})")
        parser.add_argument("--methods", nargs="+", default=None,
                            help=f"methods to compare (default: "
                                 f"{' '.join(self.default_methods)}; PyTorch Tabular peers "
                                 "only when wordexperts[peers] is installed)")
        add_runner_arguments(parser, default_out=f"runs/{self.name}")

    def run(self, args: argparse.Namespace) -> int:
        """Check the arguments, run the missing fits, write and print the report."""
        configs = list(getattr(args, "configs", self.configs))
        for config in configs:
            if self.check_config is not None:
                self.check_config(config)
            elif config not in self.configs:
                raise ValueError(f"config must be one of {list(self.configs)}, got {config!r}")
        if args.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
        notes = list(self.notes)
        names = args.methods
        if names is None:
            names = list(self.default_methods)
            if not peers_available() and any(n in PEERS for n in names):
                names = [n for n in names if n not in PEERS]
                notes.append("PyTorch Tabular peers not run: install wordexperts[peers].")
                print("note: " + notes[-1], file=sys.stderr)
        methods = get_methods(names)
        for method in methods:
            method.settings()  # a missing extra fails here, before anything is written
        self.load(configs[0], self.seeds(1)[0])  # a missing data package fails here too
        seeds = self.seeds(args.seeds)
        outcome = run_grid(methods, configs, seeds, self.load, out=args.out,
                           scheduler=args.scheduler, workers=args.workers,
                           progress=args.progress,
                           submit=not getattr(args, "report_only", False))
        if not outcome.records:
            print("no finished runs", file=sys.stderr)
            return 1
        configs_flag = f" --configs {' '.join(configs)}" if len(self.configs) > 1 else ""
        command = (f"wordexperts reproduce {self.name}{configs_flag} --seeds {args.seeds} "
                   f"--methods {' '.join(m.name for m in methods)}")
        report = write_report(
            outcome.records, args.out, title=self.title, paper=paper_runs(self.paper),
            command=command, configs=configs, methods=[m.name for m in methods],
            seeds=seeds, notes=notes,
        )
        print(report.read_text())
        return 1 if outcome.failed else 0
