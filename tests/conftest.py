"""Test-wide settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Small models run much faster on one thread (2 threads on 2 shared cores contend)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
