"""Put the input in the page cache (hot runs) or take it out (cold runs), and check that it worked.

Eviction is os.posix_fadvise(POSIX_FADV_DONTNEED) on each file, which needs no root but drops
only clean pages no process maps, so each file is fsynced first. Whether it worked is asked of
the kernel, not assumed: mincore(2) on a mapping of the file says which of its pages are
resident, without touching (and so without loading) any of them. Standard library only
(ctypes), and no buffer larger than 1 MiB, so this process stays small (see measure.py).
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path

HOT_MIN = 0.99  # a hot run needs its input this resident, a cold run at most COLD_MAX
COLD_MAX = 0.01
WARM_READ = 1 << 20  # small: the buffer counts in this process's peak RSS, the floor under every child's

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mmap.restype = ctypes.c_void_p
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
MAP_FAILED = ctypes.c_void_p(-1).value


def resident_pages(path: Path) -> tuple[int, int]:
    """(resident, total) pages of one file in the page cache, from mincore(2) on a read-only
    shared mapping that is never touched."""
    size = path.stat().st_size
    if size == 0:
        return 0, 0
    pages = -(-size // mmap.PAGESIZE)
    with open(path, "rb") as f:
        address = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, f.fileno(), 0)
    if address in (None, MAP_FAILED):
        raise OSError(ctypes.get_errno(), f"mmap of {path} failed")
    try:
        vector = (ctypes.c_ubyte * pages)()
        if _libc.mincore(address, size, vector):
            raise OSError(ctypes.get_errno(), f"mincore on {path} failed")
        return sum(byte & 1 for byte in bytes(vector)), pages
    finally:
        _libc.munmap(address, size)


def resident_fraction(paths: list[Path]) -> float:
    """The share of all the files' pages that is in the page cache (1.0 for no pages at all)."""
    counts = [resident_pages(p) for p in paths]
    total = sum(t for _, t in counts)
    return sum(r for r, _ in counts) / total if total else 1.0


def evict(paths: list[Path]) -> float:
    """Drop every file's pages from the page cache; return the resident fraction afterwards.
    fsync first: DONTNEED skips dirty pages, so a just-written file would otherwise stay."""
    for path in paths:
        with open(path, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    return resident_fraction(paths)


def warm(paths: list[Path]) -> float:
    """Read every file through (if not already resident) so a hot run finds it all in the page cache;
    return the resident fraction afterwards."""
    fraction = resident_fraction(paths)
    if fraction >= HOT_MIN:
        return fraction
    buffer = bytearray(WARM_READ)
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass
    return resident_fraction(paths)


def prepare(cache: str, paths: list[Path]) -> float:
    """Bring the input to the state a `cache` ("hot" or "cold") run needs; the resident fraction it is in."""
    if cache == "hot":
        return warm(paths)
    fraction = evict(paths)
    if fraction > COLD_MAX:  # pages under write-back when first asked: once more after a global sync
        os.sync()
        fraction = evict(paths)
    return fraction


def cache_status(cache: str, fraction: float) -> str:
    """'ok', or why a run with its input `fraction` resident would not measure a `cache` run."""
    if cache == "cold" and fraction > COLD_MAX:
        return f"input still {fraction:.0%} in the page cache after eviction: cold figure not measurable"
    if cache == "hot" and fraction < HOT_MIN:
        return f"input only {fraction:.0%} in the page cache after reading it: hot figure not measurable"
    return "ok"
