"""What every script of the workflow shares: importing tomotiff, the log, the one-line error,
and opening a scan's source from the rule's params. No pixel logic: that is the library's.

A user error (``TomotiffError``) becomes one line naming the scan, in the job's log and on
stderr, and the job exits with code 1; any other exception is a bug and keeps its traceback.
"""

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path


def _import_tomotiff(scriptdir: str) -> None:
    """Use the installed tomotiff; without one (e.g. a `--sdm conda` environment, which holds
    only the dependencies), the repository's own src/ beside this workflow."""
    try:
        import tomotiff  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(Path(scriptdir).resolve().parent / "src"))


def run(snakemake, main: Callable[[Callable[[str], None]], None]) -> None:
    """Run ``main(say)`` with ``say`` writing to the job's log; turn user errors into one line."""
    _import_tomotiff(snakemake.scriptdir)
    from tomotiff.entry import limit_blas_threads

    limit_blas_threads()  # before numpy loads, as in the commands
    from tomotiff.errors import TomotiffError

    scan = snakemake.wildcards.get("scan") or snakemake.wildcards.get("name") or "?"
    os.makedirs(os.path.dirname(os.path.abspath(snakemake.log[0])), exist_ok=True)
    with open(snakemake.log[0], "w") as log:

        def say(text: str) -> None:
            print(text, file=log, flush=True)

        if os.environ.get("SLURM_JOB_ID"):  # first, so a log shows which allocation ran the job
            say(f"SLURM job {os.environ['SLURM_JOB_ID']} on {os.uname().nodename}")
        try:
            main(say)
        except TomotiffError as exc:
            message = f"scan {scan}: {exc}"
            say(message)
            print(message, file=sys.stderr, flush=True)
            sys.exit(1)
        except BaseException:
            traceback.print_exc(file=log)
            raise


def open_source(spec: dict, begin: int, stop: int | None, window_images: bool = False, keys: str | None = None):
    """The scan's images begin..stop-1 (stop None: to the end), opened as the CLI opens them:
    cropped (``crop``), and for a raw NXtomo scan with its ``image_key`` (found by the library,
    or the ``image_key_path`` given), as nxs2tiff and nxs2tiffux handle it.

    Every image is recorded with its key in its metadata. With ``window_images`` (choosing the
    window, or the default reference image) only the projections in the range count, whatever
    ``keys`` says. With ``keys`` (a shard) the selected images are the images of that kind in
    begin..stop-1, possibly none, once the scan's whole range is known to hold some: the CLI's
    check and message. As the CLI's, the keys must exist when ``keys`` is not ``all`` or a path
    is given.
    """
    from tomotiff.errors import TomotiffError
    from tomotiff.selection import Crop
    from tomotiff.source import Hdf5Source, TiffDirSource

    path = spec["input"]
    crop = Crop(*spec["crop"])
    if spec["kind"] == "tiff":
        if os.path.isfile(path):
            raise TomotiffError(f"input {path} is a file, not a directory of TIFFs; set kind: hdf5 if it is an HDF5 file")
        return TiffDirSource(path, spec["input_pattern"], begin, stop, crop)
    if not os.path.exists(path):
        raise TomotiffError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise TomotiffError(f"input {path} is a directory; set kind: tiff (and input_pattern) for TIFF directories")
    source = Hdf5Source(path, spec["dataset"], spec["axis"], begin, stop, crop)
    try:
        length = source.selection.shape[source.selection.axis]
        required = keys not in (None, "all") or spec["image_key_path"] is not None
        scan = source.raw_scan(spec["image_key_path"], required)
        if scan is not None:
            if window_images:
                source.indices = scan.window_images(source.begin, source.stop, source.indices)
            if keys is not None:
                scan.outputs(keys, False, spec["begin"], length if spec["stop"] is None else spec["stop"])
                source.indices = scan.indices(keys, source.begin, source.stop)
    except BaseException:
        source.close()
        raise
    return source


def read_json(path: str) -> dict:
    """A JSON file an earlier job of the workflow wrote (a window, a shard's manifest)."""
    import json

    from tomotiff.errors import TomotiffError

    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise TomotiffError(f"cannot read {path}: {exc}; delete it and run again") from None
