"""Where images go (the *sink* stage): one TIFF per image, written atomically.

Each file is written under a hidden temporary name in the output directory and renamed
into place, so a killed run never leaves a partial file under a final name; the temporary
name is fixed per image, so a rerun overwrites any leftover and ends with none.
"""

import errno
import fcntl
import hashlib
import json
import os
from contextlib import contextmanager, suppress
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import tifffile
import xxhash

from tomotiff import __version__
from tomotiff.errors import TomotiffError
from tomotiff.pattern import check_pattern, format_name


CHECKSUM = "xxh3_128"  # of each whole file; `xxh128sum FILE` prints the same; ~10 GB/s, sha256 ~1 GB/s


def file_checksum(handle: BinaryIO) -> str:
    """The XXH3-128 checksum of an open file, read from its start."""
    return hashlib.file_digest(handle, xxhash.xxh3_128).hexdigest()


def temporary_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}.part"


def prepare_directory(directory: str) -> None:
    """Create the output directory if needed and check that it can be written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise TomotiffError(f"cannot create output directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TomotiffError(f"output directory {directory} is not writable; choose another OUTPUT_DIR or fix its permissions")


@contextmanager
def directory_lock(directory: str, name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` in ``directory`` so two runs never mix their files."""
    path = os.path.join(directory, f".{name}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise TomotiffError(f"cannot create lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TomotiffError(f"another tomotiff run is writing to {directory} (it holds {path}); "
                                "wait for it to finish or choose another OUTPUT_DIR") from None
        yield
    finally:
        _remove(path)
        os.close(fd)


class TiffSink:
    """Writes image ``index`` as ``directory/pattern % index`` with JSON metadata."""

    def __init__(self, directory: str, pattern: str, metadata: dict):
        self.directory = directory
        self.pattern = check_pattern(pattern, "-o/--output-pattern")
        self.metadata = metadata

    def name(self, index: int) -> str:
        return format_name(self.pattern, index)

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        """Write one image atomically; return its manifest entry (index, file, checksum)."""
        name = self.name(index)
        final = os.path.join(self.directory, name)
        temporary = os.path.join(self.directory, temporary_name(name))
        description = json.dumps({**self.metadata, "index": index, **origin}, sort_keys=True)
        try:
            _remove(temporary)
            with open(temporary, "x+b") as handle:  # exclusive create: never writes through a symlink
                tifffile.imwrite(handle, image, description=description, metadata=None, photometric="minisblack",
                                 byteorder="<", software=f"tomotiff {__version__}")
                handle.seek(0)
                digest = file_checksum(handle)
            os.replace(temporary, final)
        except OSError as exc:
            _remove(temporary)
            raise TomotiffError(write_error(final, exc)) from None
        return {"index": index, "file": name, CHECKSUM: digest}


def write_error(path: str, exc: OSError) -> str:
    """The one-line message for a failed write; a short write is a full disk or a size limit."""
    full = exc.errno in (None, errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    return f"cannot write {path}: {exc.strerror or exc}" + ("; check free space, quotas and ulimit -f" if full else "")


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
