"""The I/O ceiling: the fastest any converter could be on this machine, single-threaded.

It reads every input byte sequentially in large reads and writes as many
output bytes as the real conversion would produce, one file per image, doing
no decoding or arithmetic at all. Output files are written as soon as their
share of the input has been read, so reading and writing interleave as in a
streaming converter.

    ceiling.py --images N --output-bytes B OUTDIR INPUT [INPUT ...]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

READ_SIZE = 16 << 20  # large enough that per-call overhead is negligible


def sequential_reads(paths: list[Path], buffer: bytearray) -> Iterator[int]:
    """Read all inputs front to back into one reused buffer; yield each read's size."""
    for path in paths:
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                yield n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, required=True, help="number of output files")
    parser.add_argument("--output-bytes", type=int, required=True, help="total bytes to write")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args()

    total_in = sum(p.stat().st_size for p in args.inputs)
    image_out = bytes(args.output_bytes // args.images)
    args.outdir.mkdir(parents=True, exist_ok=True)
    done_in = written = 0
    for n in sequential_reads(args.inputs, bytearray(READ_SIZE)):
        done_in += n
        while written < args.images and done_in * args.images >= (written + 1) * total_in:
            (args.outdir / f"ceiling_{written:05d}.bin").write_bytes(image_out)
            written += 1


if __name__ == "__main__":
    main()
