"""Chunked HDF5 datasets read past h5py: raw chunks by ``os.pread``, decoded in the calling thread.

h5py holds one global lock around every HDF5 call, decompression included, so worker threads
that read compressed chunks through it take turns on one core. Here h5py is asked once, when the
reader is made, where every chunk is stored (``chunk_iter``); from then on a read touches only the
file's bytes, numpy and imagecodecs' codecs, which release the GIL, so each worker reads and
decodes its own chunks while the others do theirs.

What comes out is what h5py reads, bit for bit: the pipeline's filters are undone in reverse
order (less those a chunk's filter mask says were skipped), edge chunks are cropped, and chunks
never written read as the fill value. A dataset with anything not decoded here exactly (another
filter, a parameter not understood, a stored type h5py converts, a feature the chunk index does not
show) is left to h5py: :func:`reader_for` gives None and :func:`why_not` says why.
"""

import itertools
import os
import struct
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import h5py
import imagecodecs
import numpy as np
from h5py import h5d, h5t

from tomotiff.buffers import scratch
from tomotiff.errors import TomotiffError

DEFLATE, SHUFFLE, FLETCHER32 = 1, 2, 3
LZF, BLOSC, LZ4, BITSHUFFLE, ZSTD = 32000, 32001, 32004, 32008, 32015
_BLOSC_CODECS = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}
_BE32 = struct.Struct(">I")


class ChunkError(TomotiffError):
    """A stored chunk that does not decode to what the dataset says it holds (damaged or truncated)."""


@dataclass(frozen=True)
class _Filter:
    """One stage of a filter pipeline. ``undo(data, out)`` gives back the bytes that went into the
    filter when the chunk was written: ``out`` filled, or a view of ``data``. ``out`` has the size
    they had: ``data``'s, unless the filter ``compresses`` (then the pipeline says it); a codec may
    give fewer bytes, which the pipeline then refuses. ``codecs``: the imagecodecs codecs it needs
    (every one is in imagecodecs' wheels; a build of it may lack some)."""

    code: int
    name: str
    undo: Callable[[np.ndarray, np.ndarray], np.ndarray]
    compresses: bool = False
    codecs: tuple[str, ...] = ()


def _inflate(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    return imagecodecs.deflate_decode(data, out=out)  # libdeflate: zlib streams, twice as fast as zlib


def _unshuffle(size: int, data: np.ndarray, out: np.ndarray) -> np.ndarray:
    """HDF5's byte shuffle undone: byte j of element i was stored at j * count + i, and a tail
    shorter than an element as it is. One strided copy per byte of an element (numpy's fastest)."""
    if len(data) != len(out):
        raise ChunkError(f"shuffle was given {len(data)} bytes for {len(out)}")
    count = len(data) // size
    body = count * size
    planes, elements = data[:body].reshape(size, count), out[:body].reshape(count, size)
    for byte in range(size):
        elements[:, byte] = planes[byte]
    out[body:] = data[body:]
    return out


def _verify_fletcher32(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The bytes before HDF5's fletcher32 checksum, which follows them (little-endian). HDF5 before
    1.6.3 stored it with the bytes of each half swapped, and HDF5 accepts both, so this does."""
    if len(data) < 4:
        raise ChunkError(f"a chunk of {len(data)} bytes cannot hold a fletcher32 checksum")
    body, stored = data[:-4], bytes(data[-4:])
    c = imagecodecs.h5checksum_fletcher32(body).to_bytes(4, "little")
    if stored not in (c, bytes((c[1], c[0], c[3], c[2]))):
        raise ChunkError("its fletcher32 checksum does not match its bytes")
    return body


def _unlzf(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    return imagecodecs.lzf_decode(data, header=False, out=out)


def _unblosc(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    return imagecodecs.blosc_decode(data, numthreads=1, out=out)  # the workers are the threads


def _unlz4(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    return imagecodecs.lz4h5_decode(data, out=out)  # HDF5's LZ4 filter's framing, in one call


def _unzstd(data: np.ndarray, out: np.ndarray) -> np.ndarray:
    return imagecodecs.zstd_decode(data, out=out)


def _bitunshuffle(elem: int, block: int, data: np.ndarray, out: np.ndarray) -> np.ndarray:
    if len(data) != len(out) or len(data) % elem:
        raise ChunkError(f"bitshuffle was given {len(data)} bytes for {len(out)} of {elem}-byte elements")
    return imagecodecs.bitshuffle_decode(data.data, itemsize=elem, blocksize=block, out=out)


def _bitunshuffle_lz4(elem: int, data: np.ndarray, out: np.ndarray) -> np.ndarray:
    """bitshuffle's own LZ4 framing (the "bslz4" of HDF5 filter 32008): the decoded size (8 bytes)
    and a block's size in bytes (4 bytes), both big-endian, then LZ4 blocks of shuffled bits."""
    if len(data) < 12:
        raise ChunkError(f"a bitshuffle chunk of {len(data)} bytes has no header")
    total, block_bytes = int.from_bytes(data[:8], "big"), int.from_bytes(data[8:12], "big")
    if total != len(out) or total % elem or not block_bytes or block_bytes % (8 * elem):
        raise ChunkError(
            f"its bitshuffle header says {total} bytes in blocks of {block_bytes}, "
            f"not {len(out)} bytes of {elem}-byte elements"
        )
    shuffled = scratch("bitshuffled", (total,), np.uint8)
    _unlz4_blocks(data, shuffled, block_bytes, elem)
    return imagecodecs.bitshuffle_decode(shuffled.data, itemsize=elem, blocksize=block_bytes // elem, out=out)


def _unlz4_blocks(data: np.ndarray, out: np.ndarray, block_bytes: int, elem: int) -> None:
    """bitshuffle's LZ4 blocks into ``out``, which then holds the shuffled bits: whole blocks of
    ``block_bytes``, a shorter last one of a multiple of 8 elements, then the last elements (fewer
    than 8) stored as they are. The header and block framing are those of HDF5's LZ4 filter, so
    one lz4h5_decode does it all outside the GIL, unless a raw tail follows or a block's LZ4 size
    equals its decoded size (which LZ4H5 takes for a block stored raw): then one block at a time."""
    tail = len(out) // elem % 8 * elem
    blocks, end = _lz4_blocks(data, len(out) - tail, block_bytes)
    if end + tail > len(data):
        raise ChunkError(f"its bitshuffle LZ4 blocks need {end + tail} bytes, not {len(data)}: it is truncated")
    if not tail and all(stored != size for _, stored, size in blocks):
        decoded = imagecodecs.lz4h5_decode(data, out=out)
        if len(decoded) != len(out):
            raise ChunkError(f"its LZ4 blocks hold {len(decoded)} bytes, not {len(out)}")
        return
    done = 0
    for start, stored, size in blocks:
        if len(imagecodecs.lz4_decode(data[start : start + stored], out=out[done : done + size])) != size:
            raise ChunkError(f"an LZ4 block of its bitshuffle data decodes to other than {size} bytes")
        done += size
    out[done:] = data[end : end + tail]


def _lz4_blocks(data: np.ndarray, body: int, block_bytes: int) -> tuple[list[tuple[int, int, int]], int]:
    """(start, stored size, decoded size) of each LZ4 block holding the first ``body`` decoded
    bytes, after the 12-byte header, and where the last one ends."""
    blocks, position, done = [], 12, 0
    while done < body:
        if position + 4 > len(data):
            raise ChunkError("its bitshuffle LZ4 blocks end early: it is truncated")
        (stored,) = _BE32.unpack_from(data, position)
        size = min(block_bytes, body - done)
        blocks.append((position + 4, stored, size))
        position, done = position + 4 + stored, done + size
    return blocks, position


def _bitshuffle(cd: tuple[int, ...]) -> "_Filter | str":
    """bitshuffle's parameters (HDF5 filter 32008): version (2), element size, block size in elements
    (0: its default), compression (0: none, 2: LZ4, 3: zstd) and zstd's level."""
    compression = cd[4] if len(cd) > 4 else 0
    if len(cd) < 3 or cd[2] < 1 or (len(cd) > 3 and cd[3] % 8):
        return f"bitshuffle with parameters {cd} not understood here"
    if compression == 0:
        return _Filter(
            BITSHUFFLE, "bitshuffle", partial(_bitunshuffle, cd[2], cd[3] if len(cd) > 3 else 0), codecs=("BITSHUFFLE",)
        )
    if compression == 2:
        return _Filter(
            BITSHUFFLE,
            "bitshuffle+lz4",
            partial(_bitunshuffle_lz4, cd[2]),
            compresses=True,
            codecs=("BITSHUFFLE", "LZ4H5", "LZ4"),
        )
    return f"bitshuffle with {'zstd' if compression == 3 else f'compression {compression}'} is not decoded here"


def _shuffle(cd: tuple[int, ...]) -> "_Filter | str":
    if not cd or cd[0] < 1:
        return f"shuffle with parameters {cd} not understood here"
    return _Filter(SHUFFLE, "shuffle", partial(_unshuffle, cd[0]))


def _blosc(cd: tuple[int, ...]) -> "_Filter | str":
    """Blosc's parameters (HDF5 filter 32001): filter version, Blosc format version, element size,
    chunk size, level, shuffle, compressor. Its frames say the rest themselves."""
    if len(cd) < 7 or cd[1] > 2:
        return f"blosc with parameters {cd} not understood here"
    if cd[6] not in _BLOSC_CODECS:
        return f"blosc with compressor {cd[6]} is not decoded here"
    return _Filter(BLOSC, f"blosc-{_BLOSC_CODECS[cd[6]]}", _unblosc, compresses=True, codecs=("BLOSC",))


_FILTERS: dict[int, Callable[[tuple[int, ...]], "_Filter | str"]] = {
    DEFLATE: lambda cd: _Filter(DEFLATE, "deflate", _inflate, compresses=True, codecs=("DEFLATE",)),
    SHUFFLE: _shuffle,
    FLETCHER32: lambda cd: _Filter(FLETCHER32, "fletcher32", _verify_fletcher32, codecs=("H5CHECKSUM",)),
    LZF: lambda cd: _Filter(LZF, "lzf", _unlzf, compresses=True, codecs=("LZF",)),
    BLOSC: _blosc,
    LZ4: lambda cd: _Filter(LZ4, "lz4", _unlz4, compresses=True, codecs=("LZ4H5",)),
    BITSHUFFLE: _bitshuffle,
    ZSTD: lambda cd: _Filter(ZSTD, "zstd", _unzstd, compresses=True, codecs=("ZSTD",)),
}


def _pipeline(dcpl: h5py.h5p.PropDCID) -> "list[_Filter] | str":
    """The dataset's filters in the order they were applied, or why they are not decoded here. One
    compresses at most: what went into it is then the chunk's size, plus any checksums before it."""
    filters = []
    for k in range(dcpl.get_nfilters()):
        code, _flags, cd, name = dcpl.get_filter(k)
        made = _FILTERS[code](tuple(cd)) if code in _FILTERS else None
        if not isinstance(made, _Filter):
            label = name.decode(errors="replace").split(";")[0].strip() or "unnamed"
            return made or f"filter {code} ({label}) is not decoded here"
        missing = [codec for codec in made.codecs if not getattr(imagecodecs, codec).available]
        if missing:
            return f"this imagecodecs has no {' or '.join(missing)} codec for {made.name}"
        filters.append(made)
    codecs = [f.name for f in filters if f.compresses]
    return filters if len(codecs) < 2 else f"two compressing filters ({' then '.join(codecs)})"


@dataclass(frozen=True)
class _Index:
    """Where each chunk is stored, by its position in the grid of chunks: its byte offset in the
    file (-1: never written, so it reads as the fill value), stored size and filter mask."""

    offset: np.ndarray
    size: np.ndarray
    mask: np.ndarray

    @classmethod
    def of(cls, dataset: h5py.Dataset) -> "_Index":
        """The whole index in one pass of HDF5's chunk iterator (get_chunk_info(i) would walk the
        index up to i for every chunk)."""
        found = []
        dataset.id.chunk_iter(found.append)
        grid = tuple(-(-n // c) for n, c in zip(dataset.shape, dataset.chunks))
        where = tuple(
            (np.array([info.chunk_offset for info in found], np.int64).reshape(-1, len(grid)) // dataset.chunks).T
        )
        offset, size, mask = np.full(grid, -1, np.int64), np.zeros(grid, np.int64), np.zeros(grid, np.uint32)
        offset[where] = [info.byte_offset for info in found]
        size[where] = [info.size for info in found]
        mask[where] = [info.filter_mask for info in found]
        return cls(offset, size, mask)

    def partial_edges(self, shape: tuple[int, ...], chunks: tuple[int, ...]) -> np.ndarray:
        """Which chunks reach past the dataset's edge (HDF5 stores them at full size)."""
        edge = np.zeros(self.offset.shape, bool)
        for dim, (n, c) in enumerate(zip(shape, chunks)):
            if n % c:
                edge[(slice(None),) * dim + (-1,)] = True
        return edge


def _unread(dataset: h5py.Dataset) -> "tuple[list[_Filter], _Index] | str":
    """The pipeline and index of a dataset read here, or why h5py must read it."""
    dcpl = dataset.id.get_create_plist()
    layout = dcpl.get_layout()
    if layout != h5d.CHUNKED:
        return {
            h5d.VIRTUAL: "a virtual dataset",
            h5d.CONTIGUOUS: "contiguous layout, not chunked",
            h5d.COMPACT: "compact layout, not chunked",
        }.get(layout, f"layout {layout}, not chunked")
    if dataset.file.driver != "sec2":
        return f"the file is opened with HDF5's {dataset.file.driver} driver, not as one plain file"
    if not dataset.dtype.isnative:
        return f"non-native byte order ({dataset.dtype.str})"
    if dataset.id.get_type() != h5t.py_create(dataset.dtype):
        return f"a stored type h5py converts to {dataset.dtype}"
    if not hasattr(dataset.id, "chunk_iter"):
        return f"h5py {h5py.__version__} on HDF5 {h5py.version.hdf5_version} has no chunk_iter (HDF5 >= 1.14 has)"
    filters = _pipeline(dcpl)
    if isinstance(filters, str):
        return filters
    try:
        index = _Index.of(dataset)
    except (OSError, RuntimeError, ValueError) as exc:
        return f"its chunk index cannot be read ({str(exc).splitlines()[0]})"
    unwritten = (index.offset < 0).any()
    if unwritten and dcpl.get_fill_time() == h5d.FILL_TIME_NEVER:
        return "chunks never written, with fill time 'never' (HDF5 leaves them undefined)"
    if unwritten and dcpl.fill_value_defined() == h5d.FILL_VALUE_UNDEFINED:
        return "chunks never written, with no fill value defined"
    if filters and _maybe_unfiltered_edges(dataset, index):
        return (
            "a partial edge chunk is stored at its unfiltered size, as with H5Pset_chunk_opts' "
            "DONT_FILTER_PARTIAL_CHUNKS, which the chunk index does not show"
        )
    return filters, index


def _maybe_unfiltered_edges(dataset: h5py.Dataset, index: _Index) -> bool:
    """Whether some partial edge chunk may be stored unfiltered: HDF5 can be told to do so
    (DONT_FILTER_PARTIAL_CHUNKS, which h5py cannot show), and the index then records no filter as
    skipped. A filtered chunk exactly the size of the unfiltered one would be a coincidence."""
    nbytes = int(np.prod(dataset.chunks)) * dataset.dtype.itemsize
    edges = index.partial_edges(dataset.shape, dataset.chunks)
    return bool((edges & (index.offset >= 0) & (index.mask == 0) & (index.size == nbytes)).any())


def reader_for(dataset: h5py.Dataset) -> "ChunkReader | None":
    """A reader of ``dataset``'s chunks past h5py, or None where h5py must read it (:func:`why_not`)."""
    found = _unread(dataset)
    if isinstance(found, str):
        return None
    filters, index = found
    return ChunkReader(
        dataset.file.filename, dataset.shape, dataset.chunks, dataset.dtype, filters, index, dataset.fillvalue
    )


def why_not(dataset: h5py.Dataset) -> str:
    """Why :func:`reader_for` leaves ``dataset`` to h5py (one phrase), or "" where it does not."""
    found = _unread(dataset)
    return found if isinstance(found, str) else ""


class ChunkReader:
    """Selections of a chunked dataset read from its file's bytes. Thread-safe: the index is read
    only, ``os.pread`` has no shared file position, and every buffer is the calling thread's."""

    def __init__(
        self,
        path: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: np.dtype,
        filters: list[_Filter],
        index: _Index,
        fill,
    ) -> None:
        self.shape, self.chunks, self.dtype = shape, chunks, np.dtype(dtype)
        self.filters, self.index, self.fill = filters, index, fill
        self.largest = int(index.size.max(initial=0))  # the read buffer's size: one per thread, for every chunk
        self.fd = os.open(path, os.O_RDONLY)
        self._closing = weakref.finalize(self, os.close, self.fd)  # also when the owner never calls close

    def describe(self) -> str:
        """How the dataset is read, for -V: its filters and where they are undone."""
        if not self.filters:
            return "chunks (unfiltered: read by each worker thread, outside h5py's lock)"
        names = "+".join(f.name for f in self.filters)
        return f"chunks ({names}: read and decoded by each worker thread, outside h5py's lock)"

    def read(self, buffer: np.ndarray, key: tuple[slice, ...]) -> None:
        """Fill ``buffer`` with the dataset's selection ``key`` (one unit-step slice per dimension,
        as Selection.key makes them), reading and decoding each chunk it meets once."""
        bounds = [part.indices(size)[:2] for part, size in zip(key, self.shape)]
        spans = [range(start // c, -(-stop // c)) for (start, stop), c in zip(bounds, self.chunks)]
        chunk, raw = scratch("chunk", self.chunks, self.dtype), scratch("chunk-raw", (self.largest,), np.uint8)
        for position in itertools.product(*spans):
            inside, within = [], []  # the chunk's part of the selection: in the buffer, in the chunk
            for (start, stop), c, g in zip(bounds, self.chunks, position):
                low, high = max(start, g * c), min(stop, (g + 1) * c)
                inside.append(slice(low - start, high - start))
                within.append(slice(low - g * c, high - g * c))
            self._chunk_into(position, buffer[tuple(inside)], tuple(within), chunk, raw)

    def _chunk_into(
        self, position: tuple[int, ...], dst: np.ndarray, within: tuple[slice, ...], chunk: np.ndarray, raw: np.ndarray
    ) -> None:
        """Copy the part ``within`` of the chunk at ``position`` to ``dst``, by way of the thread's
        buffers ``chunk`` and ``raw``; a whole chunk whose place in ``dst`` is contiguous is decoded
        straight into it."""
        offset = int(self.index.offset[position])
        if offset < 0:
            dst[...] = self.fill
            return
        whole = dst.shape == self.chunks and dst.flags.c_contiguous
        chunk = dst if whole else chunk
        stored = int(self.index.size[position])
        try:
            self._decode(offset, raw[:stored], int(self.index.mask[position]), chunk.reshape(-1).view(np.uint8))
        except (ChunkError, OSError, ValueError, RuntimeError) as exc:  # ours, a codec's or the disk's
            origin = tuple(g * c for g, c in zip(position, self.chunks))
            raise ChunkError(
                f"the chunk at {origin} (byte {offset} of the file, {stored} bytes): "
                f"{str(exc).splitlines()[0]}; the file is damaged, copy it again"
            ) from None
        if not whole:
            dst[...] = chunk[within]

    def _decode(self, offset: int, raw: np.ndarray, mask: int, out: np.ndarray) -> None:
        """The chunk stored at ``offset`` (in as many bytes as ``raw`` has), its filters undone (bit k
        of ``mask``: filter k skipped), into ``out``; unfiltered, it is read straight into ``out``."""
        active = [f for k, f in enumerate(self.filters) if not mask >> k & 1]
        if not active:
            if len(raw) != len(out):
                raise ChunkError(f"it is stored unfiltered in {len(raw)} bytes, not {len(out)}")
            _pread(self.fd, out, offset)
            return
        _pread(self.fd, raw, offset)
        _undo(active, raw, out)

    def close(self) -> None:
        self._closing()


def _undo(filters: list[_Filter], data: np.ndarray, out: np.ndarray) -> None:
    """Undo ``filters`` (in the order they were applied) on ``data``, the first into ``out``. What
    went into the compressing one had the chunk's size plus 4 bytes for each fletcher32 checksum
    before it; any other size it decodes to is an error, and so is a result not the chunk's size."""
    home = None  # which of the two spare buffers holds ``data`` (the read buffer is neither)
    for step in reversed(range(len(filters))):
        undone = filters[step]
        size = len(out) + 4 * sum(f.code == FLETCHER32 for f in filters[:step]) if undone.compresses else len(data)
        spare = "chunk-b" if home == "chunk-a" else "chunk-a"
        target = out if step == 0 and size == len(out) else scratch(spare, (size,), np.uint8)
        result = undone.undo(data, target)
        if undone.compresses and len(result) != size:
            raise ChunkError(f"{undone.name} decodes it to {len(result)} bytes, not {size}")
        home, data = (spare if result is target else home), result
    if len(data) != len(out):
        raise ChunkError(f"it decodes to {len(data)} bytes, not the chunk's {len(out)}")
    if data is not out:
        out[...] = data


def _pread(fd: int, target: np.ndarray, offset: int) -> None:
    """Fill ``target`` from byte ``offset`` of the file: no shared file position, and no GIL held."""
    view = memoryview(target).cast("B")
    done = 0
    while done < len(view):
        got = os.preadv(fd, [view[done:]], offset + done)
        if not got:
            raise ChunkError(f"the file ends at byte {offset + done}, inside the chunk: it is truncated")
        done += got
