"""Reusable per-thread scratch arrays.

Fresh large allocations are slow on virtual machines (page faults on every new page), so
each worker thread keeps its read and output buffers from block to block.
"""

import threading

import numpy as np

_local = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A C-contiguous array of ``shape`` for this thread and ``slot``, reused when it fits."""
    dtype = np.dtype(dtype)
    cache = _local.__dict__.setdefault("arrays", {})
    size = int(np.prod(shape, dtype=np.int64))
    held = cache.get((slot, dtype))
    if held is None or held.size < size:
        held = np.empty(size, dtype)
        cache[(slot, dtype)] = held
    return held[:size].reshape(shape)
