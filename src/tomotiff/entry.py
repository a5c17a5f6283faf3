"""The console scripts' entry points (nxs2tiff, nxs2tiffux, tiff2tiffux, tomotiff).

One thing happens here before :mod:`tomotiff.cli` (and numpy) is imported: numpy's OpenBLAS
is limited to one thread. tomotiff never calls BLAS, but OpenBLAS starts a thread per core
when numpy loads, and those threads spin for a while, taking CPU from the extraction's own
workers (7% of a 2-core run's CPU, measured with perf). A user's own setting wins.
"""

import os


def limit_blas_threads() -> None:
    """Call before numpy is imported (the workflow's jobs call it too)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _command(name: str) -> int:
    limit_blas_threads()
    from tomotiff import cli

    return getattr(cli, name)()


def nxs2tiff_main() -> int:
    return _command("nxs2tiff_main")


def nxs2tiffux_main() -> int:
    return _command("nxs2tiffux_main")


def tiff2tiffux_main() -> int:
    return _command("tiff2tiffux_main")


def tomotiff_main() -> int:
    return _command("tomotiff_main")
