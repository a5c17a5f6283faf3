"""The streaming engine: blocks of images flow source -> (bin) -> convert -> sinks on worker threads.

Each worker takes a block (images aligned to the storage layout), reads it tile by tile into
its own reused buffer, and for every output bins and converts each tile into that output's
reused buffer, then writes the block's images to each output's sink: several outputs (u8,
u16 and f32 of the same images, say) cost one read. The reads of contiguous data (mapped) and
of chunks tomotiff decodes itself, the arithmetic and the file writes all release the GIL, so
workers overlap them; only datasets left to h5py read under its global lock. Memory is bounded by
workers x (one tile + one output block per output).

:func:`stream` is the same read, in order on one thread, for stages that only look at the
pixels (the global window).
"""

import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from tomotiff import clipping
from tomotiff.binning import bin_mean, binned_shape
from tomotiff.buffers import scratch
from tomotiff.manifest import image_entry
from tomotiff.selection import ImageSet
from tomotiff.sink import Sink
from tomotiff.source import Source

if TYPE_CHECKING:  # conversion -> window -> engine: the engine only calls a conversion's methods
    from tomotiff.conversion import Conversion

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


@dataclass(frozen=True)
class Output:
    """One product of a read: the images binned by ``binning``, converted, written to ``sink``."""

    conversion: "Conversion"
    sink: Sink
    binning: int = 1


class _EarlierBlockFailed(Exception):
    """A block waiting for its turn to write learns that an earlier block failed (not an error of its own)."""


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
                raise _EarlierBlockFailed()

    def done(self, position: int, ok: bool = True) -> None:
        with self.condition:
            self.next, self.failed = (position + 1, self.failed) if ok else (self.next, True)
            self.condition.notify_all()


def run(
    source: Source,
    images: ImageSet,
    outputs: Sequence[Output],
    workers: int = 1,
    progress: bool = False,
    inspect: Callable[[int, np.ndarray], bool] | None = None,
) -> list[list[dict]]:
    """Write every image of ``images`` to every output; return each output's manifest entries.

    An output whose conversion writes the pixels as read, unbinned, gets whole-image tiles
    without a copy. If any sink is ``ordered`` (a stack file), every sink receives the images
    in index order. ``inspect(first, tile)`` sees the first tile read of each block (images
    first, first + 1, ...; the top rows) until it returns True: a check on data read anyway.
    """
    blocks = source.blocks(images.indices)
    inspected = threading.Event()

    def check(first: int, tile: np.ndarray) -> None:
        if inspect is not None and not inspected.is_set() and inspect(first, tile):
            inspected.set()

    step = int(np.lcm.reduce([output.binning for output in outputs]))
    turns = _Turns(any(output.sink.ordered for output in outputs))
    bar = progress_bar(len(images.indices), progress)

    def one_block(position: int) -> list[list[dict]]:
        first, last = blocks[position]
        try:
            converted, tallies = _convert_block(source, first, last, outputs, step, check)
            turns.wait(position)
            entries = [
                [
                    _write(output.sink, images, first + k, out[k], source, None if tally is None else tally[k])
                    for k in range(last - first)
                ]
                for output, out, tally in zip(outputs, converted, tallies)
            ]
            source.release(first, last)
        except BaseException:
            turns.done(position, ok=False)
            raise
        turns.done(position)
        bar.update(last - first)
        return entries

    try:
        per_block = _map_in_order(one_block, len(blocks), workers)
    finally:
        bar.close()
    entries = [[entry for block in per_block for entry in block[k]] for k in range(len(outputs))]
    return [_finish(output.sink, written) for output, written in zip(outputs, entries)]


def _convert_block(
    source: Source, first: int, last: int, outputs: Sequence[Output], step: int, check: Callable
) -> tuple[list[np.ndarray], list[np.ndarray | None]]:
    """Read images first..last-1 once, ``check`` the top tile, and fill each output's buffer (or
    pass the read tile on); with each output's clipping tallies per image, summed over the tiles."""
    converted: list[np.ndarray | None] = [None] * len(outputs)
    tallies: list[np.ndarray | None] = [None] * len(outputs)
    for rows, tile in source.read_tiles(first, last, step):
        if (rows.start or 0) == 0:
            check(first, tile)
        binned = {}
        for k, output in enumerate(outputs):
            factor = output.binning
            if factor == 1 and rows == slice(None) and output.conversion.writes_as_read(source.dtype):
                converted[k] = tile
                continue
            if converted[k] is None:
                shape = (last - first, *binned_shape(source.image_shape, factor))
                converted[k] = scratch(f"out{k}", shape, output.conversion.out_dtype(source.dtype))
            if factor not in binned:
                binned[factor] = tile if factor == 1 else bin_mean(tile, factor)
            out_rows = (
                rows
                if factor == 1
                else slice((rows.start or 0) // factor, None if rows.stop is None else rows.stop // factor)
            )
            counts = output.conversion.apply(binned[factor], converted[k][:, out_rows])
            if counts is not None:
                tallies[k] = counts if tallies[k] is None else tallies[k] + counts
    return converted, tallies


def _write(
    sink: Sink, images: ImageSet, index: int, image: np.ndarray, source: Source, tally: np.ndarray | None
) -> dict:
    """Write image ``index``; its manifest entry, with what was clipped (its ``tally``, if counted)."""
    origin = {**source.image_origin(index), **images.origin(index)}
    found = image_entry(index, origin, sink.write(index, image, origin))
    return found if tally is None else {**found, **clipping.entry(tally, image.size)}


def _finish(sink: Sink, entries: list[dict]) -> list[dict]:
    per_file = sink.finish()
    return [{**entry, **per_file.get(entry["file"], {})} for entry in entries]


def _map_in_order(work, count: int, workers: int) -> list:
    """``[work(i) for i in range(count)]`` on ``workers`` threads; the first real error is raised."""
    if workers <= 1:
        return [work(position) for position in range(count)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tomotiff") as pool:
        futures = [pool.submit(work, position) for position in range(count)]
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        failed = [
            future.exception() for future in futures if future.done() and not future.cancelled() and future.exception()
        ]
        if failed:
            raise next((exc for exc in failed if not isinstance(exc, _EarlierBlockFailed)), failed[0])
        return [future.result() for future in futures]


def stream(
    source: Source, indices: np.ndarray, select: Callable[[np.ndarray, slice], np.ndarray] | None = None
) -> Iterator[tuple[list[np.ndarray], int]]:
    """The images ``indices`` (ascending) as (arrays of (image, row, column), images completed),
    in order, on this thread; the arrays are valid until the next item. ``select(tile, rows)``,
    if given, replaces each array (rows ``rows`` of its images) with the pixels it picks.

    Each of the source's blocks over the span is read whole when all its images are wanted;
    otherwise in runs of consecutive wanted images or of wanted images in one storage chunk,
    so unwanted images are not read where avoidable and no chunk is decoded twice.
    """
    if not len(indices):
        return
    indices = np.asarray(indices)
    depth = source.chunk_depth
    for first, last in source.blocks(np.arange(indices[0], indices[-1] + 1)):
        wanted = indices[np.searchsorted(indices, first) : np.searchsorted(indices, last)].tolist()
        for run in _runs(wanted, depth):
            start, stop = run[0], run[-1] + 1
            for rows, tile in source.read_tiles(start, stop):
                parts = [tile] if len(run) == stop - start else [tile[i - start : i - start + 1] for i in run]
                yield (parts if select is None else [select(part, rows) for part in parts]), 0
            yield [], len(run)


def _runs(wanted: list[int], depth: int) -> list[list[int]]:
    """``wanted`` split into runs of consecutive indices or of indices in one chunk of ``depth``."""
    runs: list[list[int]] = []
    for i in wanted:
        if runs and (i == runs[-1][-1] + 1 or i // depth == runs[-1][0] // depth):
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
