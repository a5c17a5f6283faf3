"""Files on disk, safely: input files checked before anything opens them, and (the *sink* and
*manifest* stages share it) atomic writes, checksums, output directories and the lock that keeps
two runs out of one directory.

Every file tomotiff writes appears under its final name only once it is complete: it is
written under a hidden temporary name in the same directory, then renamed (atomic on POSIX).
A run killed at any point leaves complete files and, at worst, a hidden ``.NAME.part``.
"""

import errno
import fcntl
import mmap
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO, TypeVar

import xxhash

from tomotiff.errors import TomotiffError

CHECKSUM = "xxh3_128"  # of each whole file; `xxh128sum FILE` prints the same; ~10 GB/s, sha256 ~1 GB/s
_CHECKSUM_WINDOW = 64 << 20  # bytes of a file mapped at a time while checksumming

T = TypeVar("T")


def file_checksum(handle: BinaryIO) -> str:
    """The XXH3-128 checksum of a whole open file.

    Hashed through read-only memory maps of 64 MiB windows: straight from the page cache,
    without copying the file into a buffer (a just-written TIFF is hashed where it lies),
    and with memory bounded for stacks of any size."""
    hasher = xxhash.xxh3_128()
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    for offset in range(0, size, _CHECKSUM_WINDOW):
        with mmap.mmap(fd, min(_CHECKSUM_WINDOW, size - offset), access=mmap.ACCESS_READ, offset=offset) as window:
            hasher.update(window)
    return hasher.hexdigest()


def check_input_file(path: str, expected: str) -> None:
    """Refuse, in one line, an input that is missing, not a regular file, empty or unreadable;
    ``expected`` says what to give instead. Checked with os.stat before anything opens the file,
    because opening a FIFO for reading blocks until a writer appears (a hang, not an error), and
    before any output is written, so that a bad input found later leaves no half-made output."""
    try:
        found = os.stat(path)
    except FileNotFoundError:
        raise TomotiffError(f"input file not found: {path}") from None
    except OSError as exc:
        raise TomotiffError(
            f"cannot reach {path}: {exc.strerror}; check the path and its directories' permissions"
        ) from None
    if stat.S_ISDIR(found.st_mode):
        raise TomotiffError(f"{path} is a directory; {expected}")
    if not stat.S_ISREG(found.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(found.st_mode)
            else "a socket"
            if stat.S_ISSOCK(found.st_mode)
            else "a device"
        )
        raise TomotiffError(f"{path} is {kind}, not a regular file; {expected}")
    if found.st_size == 0:
        raise TomotiffError(f"{path} is empty (0 bytes); copy it again, or wait until its writer has finished")
    if not os.access(path, os.R_OK):
        raise TomotiffError(
            f"cannot read {path}: permission denied; ask its owner for read access (chmod a+r) "
            "or copy it somewhere you can read it"
        )


def temporary_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}.part"


def write_atomically(path: str, write: Callable[[BinaryIO], T]) -> T:
    """Call ``write(handle)`` on a hidden temporary file beside ``path``, then rename it to
    ``path``; return what ``write`` returned. A failed write leaves no file behind."""
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, temporary_name(name))
    try:
        remove(temporary)
        with open(temporary, "x+b") as handle:  # exclusive create: never writes through a symlink
            result = write(handle)
        os.replace(temporary, path)
    except OSError as exc:
        remove(temporary)
        raise TomotiffError(write_error(path, exc)) from None
    except BaseException:
        remove(temporary)
        raise
    return result


def prepare_directory(directory: str) -> None:
    """Create the output directory if needed and check that it can be written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise TomotiffError(f"cannot create output directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TomotiffError(
            f"output directory {directory} is not writable; choose another OUTPUT_DIR or fix its permissions"
        )


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
            raise TomotiffError(
                f"another tomotiff run is writing to {directory} (it holds {path}); "
                "wait for it to finish or choose another OUTPUT_DIR"
            ) from None
        yield
    finally:
        remove(path)
        os.close(fd)


def write_error(path: str, exc: OSError) -> str:
    """The one-line message for a failed write; a short write is a full disk or a size limit."""
    full = exc.errno in (None, errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    return f"cannot write {path}: {exc.strerror or exc}" + ("; check free space, quotas and ulimit -f" if full else "")


def remove(path: str) -> None:
    """Remove ``path`` if it exists."""
    with suppress(FileNotFoundError):
        os.unlink(path)
