"""Vision tests run torch single-threaded.

Their tensors are tiny and the numeric gradient check runs hundreds of forwards; with several
OpenMP threads the per-op synchronisation dominates (about 10x slower on a busy 2-core machine).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _single_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
