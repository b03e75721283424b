"""torch's process-wide thread count, owned by one context manager.

Sampling and plate warping run thousands of tiny ops: one intra-op thread avoids hand-offs that cost
more than they give on a shared CPU. torch's setting is process-wide, so every change goes through
`torch_threads`, which holds a lock while the count is changed (callers on other threads wait rather
than see each other's count) and restores it on exit.
"""
from __future__ import annotations

import contextlib
import threading

_LOCK = threading.RLock()  # re-entered: the generator's block contains the sampler's


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with n torch intra-op threads (None: leave the count alone)."""
    if n is None:
        yield
        return
    import torch

    with _LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)
