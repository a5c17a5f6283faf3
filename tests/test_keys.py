"""image_key handling: finding the keys in real and synthetic raw scans, and selecting by them."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from tomotiff.errors import TomotiffError
from tomotiff.keys import KEY_NAMES, find_image_key, indices_for, key_counts, restrict
from tomotiff.synthetic import raw_keys, write_gda_raw, write_savu_recon

REAL = Path(__file__).resolve().parents[1].parent / "shared/data/real"
K11 = REAL / "k11-diad-18014/k11-18014.nxs"
I13 = REAL / "i13-24888-dangling-link.nxs"
NAN = float("nan")


@pytest.fixture()
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real beamline files not found at {REAL} (the shared/ folder beside the repository)")
    return REAL


@pytest.fixture()
def float_keys(tmp_path: Path) -> Path:
    """Float keys with NaN fill values (an aborted scan), at the NXtomo standard path."""
    path = tmp_path / "float.nxs"
    with h5py.File(path, "w") as file:
        file["entry/instrument/detector/image_key"] = np.array([2.0, 1.0, 0.0, 0.0, 0.0, 1.0, 3.0, NAN, NAN])
        file.create_dataset("entry/instrument/detector/data", (9, 4, 5), np.uint16)
    return path


def test_k11_keys_found_and_counted(real_dir: Path) -> None:
    with h5py.File(K11, "r") as file:
        path, keys = find_image_key(file, 3201)
    assert path == "/entry/instrument/imaging/image_key"
    assert keys.dtype == np.float64 and keys.shape == (3201,)
    assert key_counts(keys) == {"projections": 3001, "flats": 100, "darks": 100, "other": 0}
    flats, darks = indices_for(keys, "flats"), indices_for(keys, "darks")
    np.testing.assert_array_equal(flats, np.r_[0:50, 3101:3151])
    np.testing.assert_array_equal(darks, np.r_[50:100, 3151:3201])
    np.testing.assert_array_equal(indices_for(keys, "projections"), np.arange(100, 3101))


def test_k11_explicit_path_and_length_mismatch(real_dir: Path) -> None:
    with h5py.File(K11, "r") as file:
        path, keys = find_image_key(file, 3201, "entry/instrument/EtherCAT/image_key")
        assert path == "/entry/instrument/EtherCAT/image_key" and key_counts(keys)["projections"] == 3001
        with pytest.raises(TomotiffError, match="has 3201 keys but the image axis has 3000 images"):
            find_image_key(file, 3000, "/entry/instrument/imaging/image_key")
        # Keys of another length are not applied to these images: the file counts as key-less.
        assert find_image_key(file, 3000) is None


def test_k11_explicit_path_errors_name_the_problem(real_dir: Path) -> None:
    with h5py.File(K11, "r") as file:
        with pytest.raises(
            TomotiffError,
            match=r"'/entry/nope' does not exist; image_key datasets there: "
            r"/entry/instrument/EtherCAT/image_key \(3201,\) int32",
        ):
            find_image_key(file, 3201, "/entry/nope/image_key")
        with pytest.raises(TomotiffError, match="external link to k11-18014/k11-18014-imaging.h5"):
            find_image_key(file, 3201, "/entry/diamond_scan/keys/imaging")
        with pytest.raises(TomotiffError, match=r"rank 3, shape \(3201, 22, 26\)"):
            find_image_key(file, 3201, "/entry/imaging/data")
        with pytest.raises(TomotiffError, match="is a group, not a dataset"):
            find_image_key(file, 3201, "/entry/instrument/imaging")


def test_i13_float_keys_readable_despite_dangling_data(real_dir: Path) -> None:
    with h5py.File(I13, "r") as file:
        path, keys = find_image_key(file, 111)
    assert path == "/entry1/tomo_entry/instrument/detector/image_key"
    assert key_counts(keys) == {"projections": 91, "flats": 10, "darks": 10, "other": 0}
    np.testing.assert_array_equal(indices_for(keys, "darks"), np.r_[0:5, 106:111])
    np.testing.assert_array_equal(indices_for(keys, "projections"), np.arange(10, 101))


def test_real_files_without_keys(real_dir: Path) -> None:
    with h5py.File(real_dir / "httomo-tomo-data.h5", "r") as file:
        assert find_image_key(file, 20) is None


def test_synthetic_gda_raw(tmp_path: Path) -> None:
    write_gda_raw(str(tmp_path / "raw.nxs"), projections=20, flats=4, darks=6)
    with h5py.File(tmp_path / "raw.nxs", "r") as file:
        path, keys = find_image_key(file, 30)
    assert path == "/entry1/tomo_entry/instrument/detector/image_key"
    np.testing.assert_array_equal(keys, raw_keys(20, 4, 6))
    assert key_counts(keys) == {"projections": 20, "flats": 4, "darks": 6, "other": 0}


def test_float_keys_with_nan_fill(float_keys: Path) -> None:
    with h5py.File(float_keys, "r") as file:
        path, keys = find_image_key(file, 9)
    assert path == "/entry/instrument/detector/image_key"
    assert key_counts(keys) == {"projections": 3, "flats": 2, "darks": 1, "other": 3}
    np.testing.assert_array_equal(indices_for(keys, "projections"), [2, 3, 4])
    np.testing.assert_array_equal(indices_for(keys, "flats"), [1, 5])
    np.testing.assert_array_equal(indices_for(keys, "all"), np.arange(9))
    assert indices_for(keys, "darks").dtype == np.int64


def test_walk_finds_unusual_location_and_skips_bad_links(tmp_path: Path) -> None:
    path = tmp_path / "odd.h5"
    with h5py.File(path, "w") as file:
        file["a/dangling/image_key"] = h5py.ExternalLink("missing.h5", "/image_key")
        file["a/soft"] = h5py.SoftLink("/nowhere")
        file["a/loop"] = h5py.SoftLink("/a")  # a cycle must not recurse forever
        file["b/image_key"] = np.zeros(7, np.int32)  # wrong length: another detector
        file["b/matrix/image_key"] = np.zeros((12, 1), np.int32)  # wrong rank
        file["c/deep/image_key"] = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], np.uint8)
        file["d/alias"] = h5py.SoftLink("/c/deep")
    with h5py.File(path, "r") as file:
        found, keys = find_image_key(file, 12)
        assert found == "/c/deep/image_key" and key_counts(keys)["projections"] == 10
        assert find_image_key(file, 13) is None
        with pytest.raises(TomotiffError, match=r"'/a/soft' in .* is a soft link to '/nowhere', which does not exist"):
            find_image_key(file, 12, "/a/soft/image_key")
        with pytest.raises(TomotiffError, match="rank 2"):
            find_image_key(file, 12, "/b/matrix/image_key")


def test_no_key_dataset(tmp_path: Path) -> None:
    write_savu_recon(str(tmp_path / "recon.nxs"))
    with h5py.File(tmp_path / "recon.nxs", "r") as file:
        assert find_image_key(file, 24) is None
        with pytest.raises(TomotiffError, match="the file holds no dataset named image_key"):
            find_image_key(file, 24, "/entry/image_key")


def test_non_numeric_explicit_keys(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "text.h5", "w") as file:
        file["image_key"] = np.array([b"p", b"f"])
    with h5py.File(tmp_path / "text.h5", "r") as file:
        with pytest.raises(TomotiffError, match="image keys must be numbers"):
            find_image_key(file, 2, "image_key")
        assert find_image_key(file, 2) is None


def test_unknown_selection_lists_valid_names() -> None:
    with pytest.raises(TomotiffError, match="projections, flats, darks, all"):
        indices_for(np.zeros(3), "flat")
    assert KEY_NAMES == {"projections": 0, "flats": 1, "darks": 2}


def test_restrict() -> None:
    indices = np.array([0, 1, 5, 9, 10, 14], np.int64)
    np.testing.assert_array_equal(restrict(indices, 1, 10), [1, 5, 9])
    np.testing.assert_array_equal(restrict(indices, 10), [10, 14])
    assert restrict(indices, 3, 4).size == 0 and restrict(indices, 3, 4).dtype == np.int64
