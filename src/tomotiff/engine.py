"""The streaming engine: blocks of images flow source -> transform -> sink on worker threads.

Each worker takes a block (images aligned to the storage layout), reads it tile by tile
into its own reused buffer, transforms each tile into its reused output buffer, and writes
the block's files. HDF5 reads are serialised by h5py's lock, but the arithmetic (numpy) and
the file writes release the GIL, so a second worker overlaps them with the next read.
Memory is bounded by workers x (one tile + one output block).
"""

import os
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import numpy as np
from tqdm import tqdm

from tomotiff.buffers import scratch
from tomotiff.quantise import convert
from tomotiff.sink import TiffSink
from tomotiff.source import Source

Transform = Callable[[np.ndarray, np.ndarray], object]  # (input tile, output tile) -> fills output
MAX_DEFAULT_WORKERS = 8


def default_workers() -> int:
    """Every core this process may use, capped: past a few workers the disk is the limit."""
    return max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS))


def run(source: Source, transform: Transform | None, out_dtype: np.dtype, sink: TiffSink,
        workers: int = 1, progress: bool = False, first_tile: Callable[[np.ndarray], object] | None = None) -> list[dict]:
    """Write every selected image; return the manifest entries.

    ``transform`` None means the pixels are written as read (same dtype): whole-image tiles
    then go to the sink without a copy. ``first_tile`` sees the first tile read.
    """
    blocks = source.blocks()
    bar = tqdm(total=source.stop - source.begin, unit="img", disable=not progress, file=sys.stderr, leave=False)

    def one_block(block: tuple[int, int]) -> list[dict]:
        first, last = block
        out = None
        for rows, tile in source.read_tiles(first, last):
            if first_tile is not None and block == blocks[0] and (rows.start or 0) == 0:
                first_tile(tile[0])
            if transform is None and rows == slice(None):
                out = tile
                continue
            if out is None:
                out = scratch("out", (last - first, *source.image_shape), out_dtype)
            (transform or convert)(tile, out[:, rows])
        entries = [sink.write(first + k, out[k], source.image_origin(first + k)) for k in range(last - first)]
        bar.update(last - first)
        return entries

    try:
        if workers <= 1:
            return [entry for block in blocks for entry in one_block(block)]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tomotiff") as pool:
            futures = [pool.submit(one_block, block) for block in blocks]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for future in pending:
                future.cancel()
            failed = next((future.exception() for future in done if future.exception()), None)
            if failed is not None:
                raise failed
            return [entry for future in futures for entry in future.result()]
    finally:
        bar.close()
