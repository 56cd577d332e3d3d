"""Fixtures shared by the test modules."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread for a module's tiny models and small matrices, restored afterwards. On a busy 2-core machine
    two OpenMP threads that spin waiting on each other made such work 5-250x slower; the results are identical."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
