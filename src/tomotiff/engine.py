"""The streaming engine: blocks of images flow source -> (bin) -> transform -> sink on worker threads.

Each worker takes a block (images aligned to the storage layout), reads it tile by tile
into its own reused buffer, transforms each tile into its reused output buffer, and writes
the block's files. HDF5 reads are serialised by h5py's lock, but the arithmetic (numpy),
direct reads of contiguous data and the file writes release the GIL, so a second worker
overlaps them. Memory is bounded by workers x (one tile + one output block).
"""

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np

from tomotiff.binning import bin_mean, binned_shape
from tomotiff.buffers import scratch
from tomotiff.quantisation import convert
from tomotiff.source import Source

Transform = Callable[[np.ndarray, np.ndarray], object]  # (input tile, output tile) -> fills output
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Every core this process may use, capped: past a few workers the disk is the limit."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


class _NoBar:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, shown: bool, description: str | None = None):
    """A tqdm bar of images on stderr, imported only when shown (it costs start-up time)."""
    if not shown:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, leave=False, desc=description)


class _Turns:
    """Lets blocks finish their work in any order but write in block order (for a stack file)."""

    def __init__(self, ordered: bool):
        self.ordered, self.next, self.failed = ordered, 0, False
        self.condition = threading.Condition()

    def wait(self, position: int) -> None:
        if self.ordered:
            with self.condition:
                self.condition.wait_for(lambda: self.next == position or self.failed)
            if self.failed:
                raise RuntimeError("an earlier block failed")

    def done(self, position: int, ok: bool = True) -> None:
        with self.condition:
            self.next, self.failed = (position + 1, self.failed) if ok else (self.next, True)
            self.condition.notify_all()


def run(source: Source, transform: Transform | None, out_dtype: np.dtype, sink, workers: int = 1,
        progress: bool = False, first_tile: Callable[[np.ndarray], object] | None = None, binning: int = 1) -> list[dict]:
    """Write every selected image; return the manifest entries.

    ``transform`` None means the pixels are written as read (same dtype): whole-image tiles
    then go to the sink without a copy. ``first_tile`` sees the first tile read. A sink
    with ``ordered = True`` (a stack file) receives the images in index order.
    """
    blocks = source.blocks()
    out_shape = binned_shape(source.image_shape, binning)
    turns = _Turns(getattr(sink, "ordered", False))
    bar = progress_bar(len(source.indices), progress)

    def one_block(position: int) -> list[dict]:
        first, last = blocks[position]
        try:
            out = None
            for rows, tile in source.read_tiles(first, last, binning):
                if first_tile is not None and position == 0 and (rows.start or 0) == 0:
                    first_tile(tile[0])
                if transform is None and binning == 1 and rows == slice(None):
                    out = tile
                    continue
                if out is None:
                    out = scratch("out", (last - first, *out_shape), out_dtype)
                if binning > 1:
                    tile = bin_mean(tile, binning)
                    rows = slice((rows.start or 0) // binning, None if rows.stop is None else rows.stop // binning)
                (transform or convert)(tile, out[:, rows])
            turns.wait(position)
            entries = [sink.write(first + k, out[k], source.image_origin(first + k)) for k in range(last - first)]
            source.release(first, last)
        except BaseException:
            turns.done(position, ok=False)
            raise
        turns.done(position)
        bar.update(last - first)
        return entries

    try:
        if workers <= 1:
            return [entry for position in range(len(blocks)) for entry in one_block(position)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tomotiff") as pool:
            futures = [pool.submit(one_block, position) for position in range(len(blocks))]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            failed = [future.exception() for future in futures if future.done() and not future.cancelled()
                      and future.exception()]
            if failed:
                raise next((exc for exc in failed if not isinstance(exc, RuntimeError)), failed[0])
            return [entry for future in futures for entry in future.result()]
    finally:
        bar.close()
