"""One thread for small models: the single place that limits torch and BLAS threads.

At this project's sizes (rows of a few to a few hundred positions, 20-384 dimensions) a
second thread costs more in synchronisation than it saves (``docs/performance.md``:
2 threads ran 1.3-11x slower), and on a busy machine OpenMP threads that wait for a core
cost seconds. Every fit, evaluation and explanation that wants one thread uses
:func:`single_thread`; nothing else calls ``torch.set_num_threads``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_thread(*, torch_threads: bool = True, blas: bool = True) -> Iterator[None]:
    """Run the block on one torch thread and one BLAS thread; restore both afterwards.

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with single_thread():
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    from threadpoolctl import threadpool_limits

    threads = None
    if torch_threads:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
    try:
        if blas:
            with threadpool_limits(1):
                yield
        else:
            yield
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
