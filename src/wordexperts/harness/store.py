"""Run a grid of (method, config, seed) fits as Dask tasks, keeping every finished run.

Each finished run is appended at once as one JSON line to ``runs.jsonl`` in the output
folder, keyed by (method, config, seed, settings hash). A rerun reads that file and submits
only the missing runs, so a killed grid loses nothing and a finished grid costs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wordexperts.harness.methods import Method

RUNS_FILE = "runs.jsonl"
KEY = ("method", "config", "seed", "settings_hash")

DataFn = Callable[[str, int], tuple[pd.DataFrame, pd.DataFrame]]


@dataclass(frozen=True)
class Task:
    """One run: fit ``method`` on the data of ``config`` and ``seed``."""

    method: Method
    config: str
    seed: int
    settings_hash: str

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.method.name, self.config, self.seed, self.settings_hash)


@dataclass(frozen=True)
class GridOutcome:
    """Finished records of a grid (old and new), and the runs done and failed this time."""

    records: list[dict[str, Any]]
    ran: int
    failed: int


def add_runner_arguments(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """The options every reproduction shares (output folder, cluster, workers, progress)."""
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for runs.jsonl and the report (default: {default_out})")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="local cluster worker processes (default: one per core)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")


def read_runs(path: Path) -> list[dict[str, Any]]:
    """Every complete record in a ``runs.jsonl`` file (a line cut short by a kill is
    skipped with a warning); ``[]`` when the file does not exist."""
    if not path.exists():
        return []
    records = []
    with path.open() as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{number}: skipping an incomplete record", stacklevel=2)
                continue
            records.append(record)
    return records


def execute(task: Task, data: DataFn) -> dict[str, Any]:
    """Run one task (inside a Dask worker): one thread for BLAS and torch, timed."""
    from threadpoolctl import threadpool_limits

    if task.method.uses_torch:
        import torch

        torch.set_num_threads(1)
    train, test = data(task.config, task.seed)
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and small-class warnings of the grids
        start = time.perf_counter()
        result = task.method.run(train, test, task.seed)
        seconds = time.perf_counter() - start
    return {
        "method": task.method.name, "config": task.config, "seed": task.seed,
        "settings_hash": task.settings_hash, **result, "seconds": seconds,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None, processes: bool) -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    if n_workers < 1:
        raise ValueError(f"--workers must be >= 1, got {n_workers}")
    with warnings.catch_warnings():
        # the scheduler's HTTP routes move to a free port when another cluster holds 8787
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                               dashboard_address=None, silence_logs=logging.ERROR)
    with cluster, Client(cluster) as client:
        yield client


def run_grid(
    methods: list[Method],
    configs: list[str],
    seeds: list[int],
    data: DataFn,
    *,
    out: Path,
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    progress: bool = True,
) -> GridOutcome:
    """Run every missing (method, config, seed) on Dask; return the records of this grid
    (old and new, in file order) and how many runs ran and failed now.

    ``data(config, seed)`` gives ``(train, test)``; it must be importable by the workers (a
    module-level function). Seeds run in the outer loop, so a partial grid covers every
    method and config.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUNS_FILE
    hashes = {m.name: m.settings_hash() for m in methods}
    tasks = [Task(m, c, s, hashes[m.name]) for s in dict.fromkeys(seeds) for c in configs
             for m in methods]
    wanted = {t.key for t in tasks}
    done = {tuple(r[k] for k in KEY) for r in read_runs(path)}
    todo = [t for t in tasks if t.key not in done]
    print(f"{len(tasks) - len(todo)} of {len(tasks)} runs already in {path}; "
          f"{len(todo)} to run", file=sys.stderr)
    failed = 0
    if todo:
        from dask.distributed import as_completed
        from tqdm.auto import tqdm

        with _client(scheduler, workers, processes) as client, path.open("a") as sink:
            if sink.tell() and not path.read_bytes().endswith(b"\n"):
                sink.write("\n")  # end a record cut short by a kill; it stays skipped
            futures = {client.submit(execute, t, data, pure=False): t for t in todo}
            for future in tqdm(as_completed(futures), total=len(futures), disable=not progress,
                               desc="runs", unit="run"):
                task = futures[future]
                try:
                    record = future.result()
                except Exception:  # keep the grid going; report the failure
                    failed += 1
                    print(f"run {task.key[:3]} failed:\n{traceback.format_exc()}",
                          file=sys.stderr)
                    continue
                sink.write(json.dumps(record) + "\n")
                sink.flush()
    records: dict[tuple, dict[str, Any]] = {}
    for record in read_runs(path):
        key = tuple(record[k] for k in KEY)
        if key in wanted:
            records.setdefault(key, record)  # two concurrent grids may both finish a run
    return GridOutcome(list(records.values()), ran=len(todo) - failed, failed=failed)
