"""Chunks read past h5py (tomotiff.chunks) give exactly what h5py reads, or h5py reads them.

Every file is written by h5py and hdf5plugin, so HDF5 itself says what each chunk holds; each
test compares Hdf5Source's reads (read_tiles, read_image) with h5py's ``dataset[...]``, dtype
included, and checks which path read them (``Hdf5Source.read_path``).
"""

import ctypes
import gc
import glob
import os
import threading
from pathlib import Path

import h5py
import hdf5plugin
import imagecodecs
import numpy as np
import pytest

import tomotiff.source
from tomotiff.chunks import ChunkError, reader_for, why_not
from tomotiff.errors import TomotiffError
from tomotiff.selection import Crop
from tomotiff.source import Hdf5Source

DTYPES = ["uint16", "float32", "int8", "float64"]

BLOSC_SHUFFLES = {
    "noshuffle": hdf5plugin.Blosc.NOSHUFFLE,
    "shuffle": hdf5plugin.Blosc.SHUFFLE,
    "bitshuffle": hdf5plugin.Blosc.BITSHUFFLE,
}
FILTERS = {
    **{
        f"gzip{level}{'+shuffle' * shuffle}": dict(compression="gzip", compression_opts=level, shuffle=shuffle)
        for level in (1, 9)
        for shuffle in (False, True)
    },
    "lzf": dict(compression="lzf"),
    "lzf+shuffle": dict(compression="lzf", shuffle=True),
    "bitshuffle-lz4": dict(hdf5plugin.Bitshuffle(cname="lz4")),
    **{
        f"blosc-{cname}-{name}": dict(hdf5plugin.Blosc(cname=cname, shuffle=shuffle))
        for cname in ("lz4", "zstd", "blosclz")
        for name, shuffle in BLOSC_SHUFFLES.items()
    },
    **{f"blosc-{cname}": dict(hdf5plugin.Blosc(cname=cname)) for cname in ("lz4hc", "zlib", "snappy")},
    "lz4": dict(hdf5plugin.LZ4()),
    "lz4-small-blocks": dict(hdf5plugin.LZ4(nbytes=64)),
    "zstd": dict(hdf5plugin.Zstd()),
    "fletcher32": dict(fletcher32=True),
    "fletcher32+gzip+shuffle": dict(compression="gzip", shuffle=True, fletcher32=True),
    "fletcher32+zstd": dict(hdf5plugin.Zstd(), fletcher32=True),
    "unfiltered": {},
}


def volume(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    """Images some of which compress well (smooth) and some not at all (noise), so that codecs
    take both of their ways (LZF, for one, stores incompressible chunks unfiltered)."""
    rng = np.random.default_rng(seed)
    smooth = np.add.outer(np.arange(shape[-2]), np.arange(shape[-1])) % 50
    data = np.where(
        (np.arange(shape[0]) % 2 == 0).reshape(-1, *[1] * (len(shape) - 1)), smooth, rng.normal(0, 40, shape)
    )
    if np.dtype(dtype).kind == "f":
        return (data * np.pi).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(data, info.min, info.max).astype(dtype)


def write(path: Path, data: np.ndarray, chunks: tuple[int, ...], **options) -> Path:
    with h5py.File(path, "w") as file:
        file.create_dataset("d", data=data, chunks=chunks, **options)
    return path


def by_h5py(path: Path, axis: int = 0, crop: Crop = Crop()) -> np.ndarray:
    """The images along ``axis`` as h5py reads them, cropped, in native byte order (as sources give
    them); a leading singleton dimension dropped."""
    with h5py.File(path) as file:
        data = file["d"][...]
    data = data.astype(data.dtype.newbyteorder("="))
    if data.ndim == 4:
        data, axis = data[0], axis - 1
    images = np.moveaxis(data, axis, 0)
    return images[:, crop.rows(images.shape[1]), crop.cols(images.shape[2])]


def assert_reads_as_h5py(
    path: Path, axis: int = 0, crop: Crop = Crop(), begin: int = 0, stop: int | None = None, row_multiple: int = 1
) -> str:
    """Every block read_tiles gives, and read_image, equal h5py's reading; return the read path."""
    expected = by_h5py(path, axis, crop)
    with Hdf5Source(str(path), "d", axis, begin, stop, crop) as source:
        for first, last in source.blocks(np.arange(source.begin, source.stop)):
            for rows, tile in source.read_tiles(first, last, row_multiple):
                assert tile.dtype == expected.dtype
                assert np.array_equal(tile, expected[first:last, rows], equal_nan=True), (first, last, rows)
        for index in {source.begin, source.stop - 1, (source.begin + source.stop) // 2}:
            image = source.read_image(index)
            assert image.dtype == expected.dtype and np.array_equal(image, expected[index], equal_nan=True)
        return source.read_path


@pytest.fixture(autouse=True)
def unfiltered_chunks_too(monkeypatch):
    """Read unfiltered chunks here too (the commands leave them to h5py, which is faster for them),
    so that every layout below tests this module's reading."""
    monkeypatch.setattr(tomotiff.source, "READ_UNFILTERED_CHUNKS", True)


def test_the_commands_leave_unfiltered_chunks_to_h5py(tmp_path, monkeypatch):
    monkeypatch.setattr(tomotiff.source, "READ_UNFILTERED_CHUNKS", False)
    path = write(tmp_path / "f.h5", volume((7, 19, 23), "float32"), (3, 8, 16))
    assert assert_reads_as_h5py(path) == "h5py (unfiltered chunks, which h5py copies fastest)"
    gzip = write(tmp_path / "g.h5", volume((7, 19, 23), "float32"), (3, 8, 16), compression="gzip")
    assert assert_reads_as_h5py(gzip).startswith("chunks (deflate")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", FILTERS)
def test_every_decoded_filter_reads_as_h5py(tmp_path, name, dtype):
    """Chunks spanning 3 images and partial at every edge; bitshuffle without LZ4 below."""
    path = write(tmp_path / "f.h5", volume((7, 19, 23), dtype), (3, 8, 16), **FILTERS[name])
    read_path = assert_reads_as_h5py(path)
    assert read_path.startswith("chunks ("), read_path


@pytest.mark.parametrize("dtype", DTYPES)
def test_bitshuffle_without_compression_reads_as_h5py(tmp_path, dtype):
    """No partial edge chunks: one stored at its unfiltered size would be left to h5py (see below)."""
    path = write(tmp_path / "f.h5", volume((6, 16, 24), dtype), (3, 8, 8), **hdf5plugin.Bitshuffle(cname="none"))
    assert assert_reads_as_h5py(path).startswith("chunks (bitshuffle:")


@pytest.mark.parametrize("chunks", [(3, 7, 5), (1, 3, 3), (2, 19, 23)])
def test_bitshuffle_lz4_with_a_raw_tail_of_elements(tmp_path, chunks):
    """Chunks of a count of elements not a multiple of 8 end in elements stored unshuffled."""
    path = write(tmp_path / "f.h5", volume((7, 19, 23), "uint16"), chunks, **hdf5plugin.Bitshuffle(cname="lz4"))
    assert assert_reads_as_h5py(path).startswith("chunks (bitshuffle+lz4:")


def test_bitshuffle_lz4_block_as_long_as_its_decoded_bytes(tmp_path):
    """An LZ4 block exactly as long as what it decodes to is still LZ4 in bitshuffle's framing
    (HDF5's LZ4 filter would take it for a block stored raw): written here by hand, read by HDF5."""
    block = next(
        b
        for b in (_partly_random(64, zeros, seed) for seed in range(50) for zeros in range(64))
        if len(imagecodecs.lz4_encode(b)) == 64
    )
    other = bytes(64)
    chunk = (128).to_bytes(8, "big") + (64).to_bytes(4, "big")
    for data in (block, other):
        encoded = imagecodecs.lz4_encode(data)
        chunk += len(encoded).to_bytes(4, "big") + encoded
    with h5py.File(tmp_path / "f.h5", "w") as file:
        dataset = file.create_dataset("d", (2, 8, 16), "uint8", chunks=(1, 8, 16), **hdf5plugin.Bitshuffle(cname="lz4"))
        dataset[1] = 5
        dataset.id.write_direct_chunk((0, 0, 0), chunk)
    assert assert_reads_as_h5py(tmp_path / "f.h5").startswith("chunks (bitshuffle+lz4:")


def _partly_random(size: int, zeros: int, seed: int) -> bytes:
    return bytes(zeros) + np.random.default_rng(seed).integers(0, 256, size - zeros, dtype=np.uint8).tobytes()


@pytest.mark.parametrize(
    "order",
    [("fletcher32", "shuffle", "deflate"), ("deflate", "shuffle"), ("shuffle", "fletcher32", "deflate", "fletcher32")],
)
def test_pipelines_in_any_order_read_as_h5py(tmp_path, order):
    """h5py's high-level API always applies shuffle, then a compressor, then fletcher32; HDF5 takes
    any order. A checksum before shuffle leaves it a tail shorter than an element (float64: 4 bytes)."""
    data = volume((5, 9, 11), "float64")
    with h5py.File(tmp_path / "f.h5", "w") as file:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2, 4, 8))
        add = {"fletcher32": dcpl.set_fletcher32, "shuffle": dcpl.set_shuffle, "deflate": lambda: dcpl.set_deflate(4)}
        for name in order:
            add[name]()
        space = h5py.h5s.create_simple(data.shape)
        h5py.Dataset(h5py.h5d.create(file.id, b"d", h5py.h5t.NATIVE_DOUBLE, space, dcpl=dcpl))[...] = data
    with h5py.File(tmp_path / "f.h5") as file:
        written = file["d"].id.get_create_plist()
        assert [written.get_filter(k)[3].decode() for k in range(written.get_nfilters())] == list(order)
    assert (
        assert_reads_as_h5py(tmp_path / "f.h5") == f"chunks ({'+'.join(order)}: read and decoded by each worker "
        "thread, outside h5py's lock)"
    )


def test_booleans_read_as_h5py(tmp_path):
    path = write(tmp_path / "f.h5", volume((5, 9, 11), "int8") > 3, (2, 4, 4), compression="gzip", shuffle=True)
    assert assert_reads_as_h5py(path).startswith("chunks (")


@pytest.mark.parametrize(
    ("shape", "chunks", "axis"),
    [
        ((9, 20, 24), (4, 6, 10), 0),  # chunks of 4 images, partial at every edge
        ((20, 9, 24), (8, 8, 8), 1),  # Savu: images on the middle axis
        ((20, 24, 9), (6, 10, 4), 2),
        ((1, 9, 20, 24), (1, 3, 7, 24), 1),  # a leading singleton dimension
    ],
)
@pytest.mark.parametrize("filters", ["gzip1+shuffle", "unfiltered", "bitshuffle-lz4"])
def test_layouts_read_as_h5py(tmp_path, shape, chunks, axis, filters):
    path = write(tmp_path / "f.h5", volume(shape, "float32"), chunks, **FILTERS[filters])
    assert assert_reads_as_h5py(path, axis).startswith("chunks (")
    assert assert_reads_as_h5py(path, axis, Crop(3, 2, 5, 1), begin=2, stop=8).startswith("chunks (")


@pytest.mark.parametrize(
    ("maxshape", "libver", "chunks"),
    [
        (None, "earliest", (2, 8, 8)),  # version 1 B-tree
        (None, "latest", (2, 8, 8)),  # fixed array
        ((None, 20, 24), "latest", (2, 8, 8)),  # extensible array (one unlimited dimension)
        ((None, None, 24), "latest", (2, 8, 8)),  # version 2 B-tree
        (None, "latest", (9, 20, 24)),  # a single chunk
    ],
)
def test_every_kind_of_chunk_index_reads_as_h5py(tmp_path, maxshape, libver, chunks):
    with h5py.File(tmp_path / "f.h5", "w", libver=libver, userblock_size=512) as file:  # offsets count the user block
        file.create_dataset(
            "d", data=volume((9, 20, 24), "uint16"), chunks=chunks, maxshape=maxshape, compression="gzip", shuffle=True
        )
    assert assert_reads_as_h5py(tmp_path / "f.h5").startswith("chunks (shuffle+deflate:")


def test_row_bands_and_crops_read_as_h5py(tmp_path, monkeypatch):
    """Tiles of a few rows (as for large images): chunks cut by a band or a crop are read in part."""
    monkeypatch.setattr(tomotiff.source, "TILE_BYTES", 3 * 24 * 4 * 4)
    path = write(tmp_path / "f.h5", volume((20, 9, 24), "float32"), (8, 3, 8), compression="gzip", shuffle=True)
    for crop in (Crop(), Crop(1, 0, 2, 3), Crop(4, 1, 0, 0)):
        assert_reads_as_h5py(path, axis=1, crop=crop, begin=1, stop=8)
        assert_reads_as_h5py(path, axis=1, crop=crop, row_multiple=2)


@pytest.mark.parametrize("fillvalue", [None, 7])
@pytest.mark.parametrize("filters", ["gzip1+shuffle", "unfiltered", "blosc-zstd-bitshuffle"])
@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_chunks_never_written_read_as_the_fill_value(tmp_path, fillvalue, filters, dtype):
    with h5py.File(tmp_path / "f.h5", "w") as file:
        dataset = file.create_dataset(
            "d", (9, 20, 24), dtype, chunks=(2, 8, 8), fillvalue=fillvalue, **FILTERS[filters]
        )
        dataset[2:5, 3:11, :17] = volume((3, 8, 17), dtype)  # chunks partly written, others never
        dataset[8] = 1
        assert dataset.id.get_num_chunks() < 5 * 3 * 3
    assert assert_reads_as_h5py(tmp_path / "f.h5").startswith("chunks (")
    if fillvalue is not None:
        assert (by_h5py(tmp_path / "f.h5")[0] == fillvalue).all()


def test_an_empty_dataset_reads_as_its_fill_value(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as file:
        file.create_dataset("d", (4, 6, 8), "float32", chunks=(1, 6, 8), fillvalue=-1.5, compression="gzip")
    assert assert_reads_as_h5py(tmp_path / "f.h5").startswith("chunks (deflate:")


def test_fill_time_never_with_chunks_never_written_is_left_to_h5py(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as file:
        dataset = file.create_dataset("d", (4, 6, 8), "uint16", chunks=(1, 6, 8), fillvalue=3, fill_time="never")
        dataset[0] = 1
        file.create_dataset("full", data=np.ones((2, 6, 8), "uint16"), chunks=(1, 6, 8), fill_time="never")
    with h5py.File(tmp_path / "f.h5") as file:
        assert reader_for(file["d"]) is None and "fill time 'never'" in why_not(file["d"])
        assert reader_for(file["full"]) is not None  # every chunk written: the fill value never shows


def test_a_checksum_mismatch_is_a_one_line_error(tmp_path):
    data = volume((6, 16, 16), "uint16")
    for filters in ("fletcher32", "fletcher32+gzip+shuffle"):
        path = write(tmp_path / f"{filters}.h5", data, (2, 16, 16), **FILTERS[filters])
        with h5py.File(path) as file:
            chunk = file["d"].id.get_chunk_info_by_coord((2, 0, 0))
        with open(path, "r+b") as handle:
            handle.seek(chunk.byte_offset + chunk.size // 2)
            byte = handle.read(1)
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte[0] ^ 0x10]))
        with h5py.File(path) as file, pytest.raises(OSError):
            file["d"][2]  # HDF5 refuses it too
        with Hdf5Source(str(path), "d") as source:
            assert source.read_path.startswith("chunks (")
            with pytest.raises(TomotiffError) as caught:
                list(source.read_tiles(0, 6))
            message = str(caught.value)
            assert "fletcher32 checksum" in message and "(2, 0, 0)" in message and str(path) in message
            assert len(message.splitlines()) == 1
            assert np.array_equal(source.read_image(0), data[0])  # the other chunks still read


def test_a_file_cut_short_after_opening_is_an_error(tmp_path):
    path = write(tmp_path / "f.h5", volume((6, 16, 16), "uint16"), (2, 16, 16), compression="gzip")
    with h5py.File(path) as file:
        reader = reader_for(file["d"])
        last = file["d"].id.get_chunk_info_by_coord((4, 0, 0))
    os.truncate(path, last.byte_offset + 10)
    with pytest.raises(ChunkError, match="truncated"):
        reader.read(np.empty((2, 16, 16), "uint16"), (slice(4, 6), slice(0, 16), slice(0, 16)))
    reader.close()


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (dict(scaleoffset=0), "filter 6 (scaleoffset) is not decoded here"),
        (dict(hdf5plugin.Blosc2()), "filter 32026"),
        (dict(hdf5plugin.BZip2()), "filter 307"),
        (dict(hdf5plugin.Bitshuffle(cname="zstd")), "bitshuffle with zstd is not decoded here"),
        (dict(compression="gzip", dtype=">u2"), "non-native byte order (>u2)"),
    ],
)
def test_datasets_not_decoded_here_are_read_by_h5py_saying_why(tmp_path, options, reason):
    dtype = options.pop("dtype", "uint16")
    path = write(tmp_path / "f.h5", volume((7, 19, 23), "uint16").astype(dtype), (3, 8, 16), **options)
    read_path = assert_reads_as_h5py(path)
    assert read_path.startswith("h5py (") and reason in read_path, read_path


def test_a_codec_missing_from_imagecodecs_leaves_the_dataset_to_h5py(tmp_path, monkeypatch):
    path = write(tmp_path / "f.h5", volume((7, 19, 23), "uint16"), (3, 8, 16), **hdf5plugin.Blosc())
    monkeypatch.setattr(imagecodecs.BLOSC, "available", False)
    assert assert_reads_as_h5py(path) == "h5py (this imagecodecs has no BLOSC codec for blosc-lz4)"


def test_bitshuffle_partial_edge_chunks_are_read_by_h5py(tmp_path):
    """Unfiltered partial edge chunks (DONT_FILTER_PARTIAL_CHUNKS) do not show in the chunk index,
    and a size-preserving filter's edge chunks look like them: such datasets are left to h5py."""
    path = write(tmp_path / "f.h5", volume((7, 19, 23), "uint16"), (3, 8, 16), **hdf5plugin.Bitshuffle(cname="none"))
    read_path = assert_reads_as_h5py(path)
    assert read_path.startswith("h5py (") and "DONT_FILTER_PARTIAL_CHUNKS" in read_path


def test_edge_chunks_stored_unfiltered_are_read_by_h5py(tmp_path):
    """A dataset written with H5Pset_chunk_opts(DONT_FILTER_PARTIAL_CHUNKS), which h5py cannot set:
    called here through ctypes on the HDF5 library h5py loaded."""
    libraries = glob.glob(os.path.join(os.path.dirname(h5py.__file__) + ".libs", "libhdf5-*"))
    if not libraries:
        pytest.skip("h5py's own HDF5 library not found (h5py not from a wheel)")
    hdf5 = ctypes.CDLL(libraries[0])
    hdf5.H5Pset_chunk_opts.argtypes = [ctypes.c_int64, ctypes.c_uint]
    data = volume((5, 37, 41), "uint16")
    with h5py.File(tmp_path / "f.h5", "w") as file:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((2, 16, 16))
        dcpl.set_deflate(1)
        assert hdf5.H5Pset_chunk_opts(dcpl.id, 2) >= 0  # H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS
        space = h5py.h5s.create_simple(data.shape)
        h5py.Dataset(h5py.h5d.create(file.id, b"d", h5py.h5t.NATIVE_UINT16, space, dcpl=dcpl))[...] = data
    read_path = assert_reads_as_h5py(tmp_path / "f.h5")
    assert read_path.startswith("h5py (") and "DONT_FILTER_PARTIAL_CHUNKS" in read_path


def test_contiguous_and_chunked_datasets_say_how_they_are_read(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as file:
        file["contiguous"] = volume((3, 4, 5), "float32")
        file.create_dataset(
            "chunked",
            data=volume((3, 4, 5), "float32"),
            chunks=(1, 4, 5),
            compression="gzip",
            shuffle=True,
            fletcher32=True,
        )
    with Hdf5Source(str(tmp_path / "f.h5"), "contiguous") as source:
        assert source.read_path.startswith("mapped (")
    with Hdf5Source(str(tmp_path / "f.h5"), "contiguous", crop=Crop(1, 0, 0, 0)) as source:
        assert source.read_path == "h5py (contiguous layout, not chunked)"
    with Hdf5Source(str(tmp_path / "f.h5"), "chunked") as source:
        assert source.read_path.startswith("chunks (shuffle+deflate+fletcher32: read and decoded by each worker")


def test_decoding_never_calls_into_h5py(tmp_path):
    """Why workers decode in parallel: once the reader exists, a read needs neither h5py's objects
    (the file is closed) nor its global lock (held by another thread throughout the read)."""
    data = volume((8, 64, 64), "uint16")
    path = write(tmp_path / "f.h5", data, (2, 32, 64), compression="gzip", shuffle=True, fletcher32=True)
    with h5py.File(path) as file:
        reader = reader_for(file["d"])
    held, release = threading.Event(), threading.Event()

    def hold_h5py_lock() -> None:
        with h5py._objects.phil:
            held.set()
            release.wait()

    gc.collect()  # h5py objects of earlier tests, finalised here while the lock is held, would wait for it
    gc.disable()
    try:
        holder = threading.Thread(target=hold_h5py_lock)
        holder.start()
        held.wait()
        out, failed = np.zeros_like(data), []
        reading = threading.Thread(target=lambda: _read_all(reader, out, failed))
        reading.start()
        reading.join(timeout=60)  # a deadlock guard, not a timing: the read waits forever if it needs the lock
        stuck = reading.is_alive()
        release.set()
        holder.join()
        reading.join()
    finally:
        gc.enable()
    reader.close()
    assert not stuck and not failed and np.array_equal(out, data)


def _read_all(reader, out: np.ndarray, failed: list) -> None:
    try:
        reader.read(out, (slice(0, 8), slice(0, 64), slice(0, 64)))
    except Exception as exc:  # reported by the test's thread
        failed.append(exc)
