"""The one resumable result store of the harness, and the Dask grid of tabular fits.

:class:`ResultStore` is a JSON-lines file of finished results, each identified by the values
of a few key fields; :func:`settings_key` is the one short hash of the settings that produced
a result, part of that key, so changed settings are recomputed and unchanged ones are not.
Each stored record carries :func:`~wordexperts.harness.provenance.environment` (versions,
CPU kernels, git commit). Every reproduction writes each finished result at once and resumes
from the file:
:func:`run_grid` here (Tables 3-5), ``analogy_theory.run_experiment`` and the benchmarks.

:func:`run_grid` runs a grid of (method, config, seed) fits as Dask tasks; a rerun submits
only the missing runs, so a killed grid loses nothing and a finished grid costs nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from wordexperts.harness.methods import Method
from wordexperts.harness.provenance import environment

RUNS_FILE = "runs.jsonl"
KEY = ("method", "config", "seed", "settings_hash")
CONNECT_TIMEOUT = 5.0  # seconds to wait for a --scheduler to answer

DataFn = Callable[[str, int], tuple[pd.DataFrame, pd.DataFrame]]


def settings_key(settings: Any) -> str:
    """Short hash (12 hex digits) of ``settings``: a dataclass instance (its fields) or any
    JSON-able value (keys sorted, other objects by ``repr``). The part of a stored result's
    key that says which settings produced it.

    >>> settings_key({"b": 1, "a": [1, 2]}) == settings_key({"a": [1, 2], "b": 1})
    True
    >>> len(settings_key({"grid": {}}))
    12
    """
    if dataclasses.is_dataclass(settings) and not isinstance(settings, type):
        settings = dataclasses.asdict(settings)
    text = json.dumps(settings, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class ResultStore:
    """Finished results in a JSON-lines file, one JSON object a line, identified by the
    values of the fields ``key``; each :meth:`append` is written and flushed at once.

    A line cut short (a run killed while writing) is dropped when the file is first read:
    one warning names the file and line, the line is kept in ``<file>.broken`` and the file
    is rewritten without it, so later reads are clean.

    >>> import tempfile
    >>> store = ResultStore(Path(tempfile.mkdtemp()) / "runs.jsonl", key=("name", "seed"))
    >>> store.done(("a", 1))
    False
    >>> store.append({"name": "a", "seed": 1, "score": 0.5})
    >>> store.done(("a", 1)), len(ResultStore(store.path, key=store.key).records())
    (True, 1)
    """

    def __init__(self, path: str | Path, *, key: Sequence[str]) -> None:
        self.path = Path(path)
        self.key = tuple(key)
        if not self.key:
            raise ValueError("key must name at least one field")
        self._records: list[dict[str, Any]] | None = None
        self._done: set[tuple] = set()

    def key_of(self, record: dict[str, Any]) -> tuple:
        """The key of ``record``: its values of the key fields (``None`` where absent)."""
        return tuple(record.get(field) for field in self.key)

    def records(self) -> list[dict[str, Any]]:
        """Every stored result, in file order (``[]`` without a file)."""
        if self._records is None:
            self._records = self._load()
            self._done = {self.key_of(r) for r in self._records}
        return list(self._records)

    def done(self, key: tuple) -> bool:
        """Whether a result with ``key`` (values of the key fields, in order) is stored."""
        self.records()
        return tuple(key) in self._done

    def append(self, record: dict[str, Any]) -> None:
        """Store ``record`` (JSON-able, with every key field): written and flushed now, with
        the ``environment`` that produced it (:func:`~wordexperts.harness.provenance.
        environment`) unless the record has one."""
        missing = [field for field in self.key if field not in record]
        if missing:
            raise ValueError(f"record lacks the key field(s) {missing}")
        record = {**record, "environment": record.get("environment", environment())}
        self.records()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as sink:
            sink.write(json.dumps(record) + "\n")
            sink.flush()
        self._records.append(record)
        self._done.add(self.key_of(record))

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        records, kept, broken = [], [], []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                broken.append((number, line))
                continue
            records.append(record)
            kept.append(line)
        if broken or (text and not text.endswith("\n")):
            self._repair(kept, broken)
        return records

    def _repair(self, kept: list[str], broken: list[tuple[int, str]]) -> None:
        if broken:
            backup = self.path.with_name(self.path.name + ".broken")
            with backup.open("a") as f:
                f.writelines(line + "\n" for _, line in broken)
            numbers = ", ".join(str(n) for n, _ in broken)
            warnings.warn_explicit(
                f"{self.path}: line {numbers} was cut short (a run killed while writing?) "
                f"and is dropped; the file is rewritten without it (the line is kept in "
                f"{backup.name})",
                UserWarning, filename=str(self.path), lineno=broken[0][0],
            )
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)


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


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1 (checked while parsing, before any work)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_runner_arguments(parser: argparse.ArgumentParser, *, default_out: str) -> None:
    """The options every reproduction shares (output folder, cluster, workers, progress)."""
    parser.add_argument("--out", type=Path, default=Path(default_out),
                        help=f"folder for runs.jsonl and the report (default: {default_out})")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="address of a running Dask scheduler (default: a local cluster)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="local cluster worker processes (default: one per core)")
    parser.add_argument("--no-progress", dest="progress", action="store_false",
                        help="no progress bar")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: report the finished runs of the grid in --out")


def execute(task: Task, data: DataFn) -> dict[str, Any]:
    """Run one task (inside a Dask worker): one thread for BLAS and torch, timed."""
    from wordexperts.core.threads import single_thread

    train, test = data(task.config, task.seed)
    with single_thread(torch_threads=task.method.uses_torch), warnings.catch_warnings():
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
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:  # refused, unreachable, or no answer in time
            raise ValueError(f"--scheduler: no Dask scheduler answered at {scheduler} within "
                             f"{CONNECT_TIMEOUT:g} s ({type(exc).__name__})") from None
        with client:
            yield client
        return
    with warnings.catch_warnings():
        # the scheduler's HTTP routes move to a free port when another cluster holds 8787
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                               processes=processes, dashboard_address=None,
                               silence_logs=logging.ERROR)
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
    submit: bool = True,
) -> GridOutcome:
    """Run every missing (method, config, seed) on Dask; return the records of this grid
    (old and new, in file order) and how many runs ran and failed now.

    ``data(config, seed)`` gives ``(train, test)``; it must be importable by the workers (a
    module-level function). Seeds run in the outer loop, so a partial grid covers every
    method and config. Finished runs go to ``out/runs.jsonl`` (a :class:`ResultStore` keyed
    by :data:`KEY`); arguments and every method's settings are checked before anything is
    written. ``submit=False`` runs nothing: the finished records of the grid only.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    hashes = {m.name: settings_key(m.settings()) for m in methods}
    store = ResultStore(Path(out) / RUNS_FILE, key=KEY)
    tasks = [Task(m, c, s, hashes[m.name]) for s in dict.fromkeys(seeds) for c in configs
             for m in methods]
    todo = [t for t in tasks if not store.done(t.key)]
    print(f"{len(tasks) - len(todo)} of {len(tasks)} runs already in {store.path}; "
          f"{len(todo)} {'to run' if submit else 'not run (report only)'}", file=sys.stderr)
    if not submit:
        todo = []
    failed = 0
    if todo:
        from dask.distributed import as_completed
        from tqdm.auto import tqdm

        with _client(scheduler, workers, processes) as client:
            futures = {client.submit(execute, t, data, pure=False): t for t in todo}
            # a bar only on a terminal: logs of long grids stay short
            bar_off = None if progress else True
            for future in tqdm(as_completed(futures), total=len(futures), disable=bar_off,
                               desc="runs", unit="run"):
                task = futures[future]
                try:
                    record = future.result()
                except Exception:  # keep the grid going; report the failure
                    failed += 1
                    print(f"run {task.key[:3]} failed:\n{traceback.format_exc()}",
                          file=sys.stderr)
                    continue
                store.append(record)
    wanted = {t.key for t in tasks}
    records: dict[tuple, dict[str, Any]] = {}
    for record in store.records():
        key = store.key_of(record)
        if key in wanted:
            records.setdefault(key, record)  # two concurrent grids may both finish a run
    return GridOutcome(list(records.values()), ran=len(todo) - failed, failed=failed)
