"""What one chunk costs to read and to decode, on one core: the figures behind the scaling estimate
in README.md ("How the gains scale on a bigger node").

For each compressed case of bench.py (C-gzip, C-bslz4, C-blosc: uint16 images of 2048 x 2048, one
chunk each) and for case A's unfiltered (32, 32, 32) chunks, a small volume is written and read
chunk by chunk in this one thread, runs alternating, medians:

- *read, hot*: ``os.pread`` of every stored chunk with the file in the page cache (memory bandwidth);
- *read, cold*: the same after evicting the file (pagecache.evict, checked): this machine's disk;
- *decode*: tomotiff.chunks' decoding of the chunks already read (what each worker thread does
  outside h5py's lock), and *h5py*: h5py reading the same chunks hot (read and decode, under its lock).

Costs are per chunk and in MB/s of decoded pixels per core. The decode rate times the cores gives
where decoding stops being the bound; the cold read rate (or a cluster file system's per-process
bandwidth) is where the disk takes over.

    python benchmarks/chunk_costs.py [--images 16] [--repeats 5] [--workdir DIR]
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pagecache
from cases import CASES, scaled_images
from volumes import WRITERS

from tomotiff import chunks

KINDS = ("C-gzip", "C-bslz4", "C-blosc", "A")


def chunk_reader(path: Path, dataset: str) -> tuple[chunks.ChunkReader, h5py.File]:
    """tomotiff's chunk reader of the dataset (filters included even when unfiltered: A's too)."""
    file = h5py.File(path, "r")
    found = chunks._unread(file[dataset])
    if isinstance(found, str):
        raise SystemExit(f"{path}: tomotiff does not decode its chunks ({found})")
    data = file[dataset]
    return chunks.ChunkReader(str(path), data.shape, data.chunks, data.dtype, *found, data.fillvalue), file


def stored(reader: chunks.ChunkReader) -> list[tuple[int, int, int]]:
    """(offset, size, filter mask) of every stored chunk, in file order."""
    index = reader.index
    written = index.offset >= 0
    rows = sorted(zip(index.offset[written].tolist(), index.size[written].tolist(), index.mask[written].tolist()))
    return rows


def kept(reader: chunks.ChunkReader, where: list[tuple[int, int, int]]) -> list[np.ndarray]:
    """Every stored chunk's bytes, for the decoding runs."""
    raws = [np.empty(size, np.uint8) for _, size, _ in where]
    for raw, (offset, _, _) in zip(raws, where):
        chunks._pread(reader.fd, raw, offset)
    return raws


def read_all(reader: chunks.ChunkReader, where: list[tuple[int, int, int]]) -> None:
    """Read every stored chunk into one reused buffer, as a worker does (no page faults of new memory)."""
    buffer = np.empty(reader.largest, np.uint8)
    for offset, size, _ in where:
        chunks._pread(reader.fd, buffer[:size], offset)


def decode_all(reader: chunks.ChunkReader, raws: list[np.ndarray], where: list[tuple[int, int, int]]) -> None:
    out = np.empty(int(np.prod(reader.chunks)) * reader.dtype.itemsize, np.uint8)
    for raw, (_, _, mask) in zip(raws, where):
        active = [f for k, f in enumerate(reader.filters) if not mask >> k & 1]
        if active:
            chunks._undo(active, raw, out)
        else:
            out[...] = raw


def h5py_all(file: h5py.File, dataset: str) -> None:
    data = file[dataset]
    for chunk in data.iter_chunks():
        data[chunk]


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def measure(name: str, images: int, repeats: int, root: Path) -> dict:
    spec = CASES[name]
    path = root / f"{name}.h5"
    WRITERS[spec.layout](spec, images, path)
    reader, file = chunk_reader(path, spec.dataset)
    where = stored(reader)
    pixels = int(np.prod(file[spec.dataset].shape)) * reader.dtype.itemsize
    raws = kept(reader, where)
    runs: dict[str, list[float]] = {"read, hot": [], "read, cold": [], "decode": [], "h5py": []}
    for _ in range(repeats):
        pagecache.warm([path])
        runs["read, hot"].append(timed(lambda: read_all(reader, where)))
        runs["decode"].append(timed(lambda: decode_all(reader, raws, where)))
        runs["h5py"].append(timed(lambda: h5py_all(file, spec.dataset)))
        if pagecache.evict([path]) <= pagecache.COLD_MAX:
            runs["read, cold"].append(timed(lambda: read_all(reader, where)))
    file.close()
    reader.close()
    path.unlink()
    stored_bytes = sum(size for _, size, _ in where)
    return {
        "case": name,
        "chunks": len(where),
        "chunk_shape": list(reader.chunks),
        "filters": "+".join(f.name for f in reader.filters) or "none",
        "ratio": pixels / stored_bytes,
        "pixels_mb": pixels / 1e6,
        "seconds": {step: statistics.median(times) if times else None for step, times in runs.items()},
    }


def table(results: list[dict]) -> str:
    lines = [
        "| case | filters | chunks | ratio | step | ms per chunk | MB/s per core (decoded pixels) |",
        "| --- | --- | ---: | ---: | --- | ---: | ---: |",
    ]
    for found in results:
        for step, seconds in found["seconds"].items():
            if seconds is None:
                lines.append(f"| {found['case']} | {found['filters']} | {found['chunks']} | | {step} | n/a | n/a |")
                continue
            per_chunk = 1e3 * seconds / found["chunks"]
            rate = found["pixels_mb"] / seconds
            lines.append(
                f"| {found['case']} | {found['filters']} | {found['chunks']} | {found['ratio']:.2f} | {step} "
                f"| {per_chunk:.3f} | {rate:.0f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="images (C cases) per volume; A gets 16x as many")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="chunk-costs-", dir=args.workdir))
    try:
        results = []
        for name in KINDS:
            images = args.images * 16 if name == "A" else args.images
            results.append(measure(name, max(images, scaled_images(CASES[name], 0)), args.repeats, root))
        print(table(results))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    main()
