"""Files other software wrote: virtual datasets with missing sources, dangling links (tomotiff.hdf5)."""

import os
import shutil

import h5py
import numpy as np

from tomotiff.cli import nxs2tiff_main


def write_vds(directory, parts: int, absolute: set[int] = frozenset()) -> str:
    """A VDS of ``parts`` sources (2 images each) in ``directory``; sources in ``absolute`` by absolute path."""
    os.makedirs(directory, exist_ok=True)
    layout = h5py.VirtualLayout((2 * parts, 4, 5), np.uint16)
    for i in range(parts):
        with h5py.File(os.path.join(directory, f"part{i}.h5"), "w") as file:
            file["data"] = np.full((2, 4, 5), i + 1, np.uint16)
        name = os.path.abspath(os.path.join(directory, f"part{i}.h5")) if i in absolute else f"part{i}.h5"
        layout[2 * i : 2 * i + 2] = h5py.VirtualSource(name, "data", (2, 4, 5))
    path = os.path.join(directory, "vds.h5")
    with h5py.File(path, "w") as file:
        file.create_virtual_dataset("data", layout, fillvalue=0)
    return path


def fill_value_images(vds: str) -> list[int]:
    """The images HDF5 itself reads as the fill value (0): the truth the check must agree with."""
    with h5py.File(vds) as file:
        return [i for i in range(file["data"].shape[0]) if file["data"][i].max() == 0]


def test_a_virtual_dataset_with_missing_sources_is_refused_naming_them(tmp_path, monkeypatch, capsys):
    vds = write_vds(tmp_path / "scan", 4, absolute={1, 3})
    (tmp_path / "aside").mkdir()
    os.rename(tmp_path / "scan/part2.h5", tmp_path / "aside/part2.h5")  # a relative source gone
    os.rename(tmp_path / "scan/part3.h5", tmp_path / "aside/part3.h5")  # an absolute one gone
    monkeypatch.chdir(tmp_path)
    assert fill_value_images(vds) == [4, 5, 6, 7]
    assert nxs2tiff_main(["-d", "data", vds, str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert "virtual dataset whose sources are missing (2 of 4: " in error
    assert "part2.h5:data" in error and f"{tmp_path}/scan/part3.h5:data" in error and "part0.h5" not in error
    assert not (tmp_path / "out").exists()
    monkeypatch.chdir(tmp_path / "aside")  # HDF5 also looks in the working directory, by base name too
    assert fill_value_images(vds) == []
    assert nxs2tiff_main(["-q", "-d", "data", vds, str(tmp_path / "out")]) == 0
    monkeypatch.chdir(tmp_path)
    shutil.move(tmp_path / "aside/part2.h5", tmp_path / "scan/part2.h5")
    shutil.move(tmp_path / "aside/part3.h5", tmp_path / "scan/part3.h5")
    assert fill_value_images(vds) == []
    assert nxs2tiff_main(["-q", "-d", "data", vds, str(tmp_path / "out2")]) == 0


def test_a_source_file_without_its_dataset_is_missing_too(tmp_path, capsys):
    vds = write_vds(tmp_path, 2)
    with h5py.File(tmp_path / "part1.h5", "w") as file:
        file["other"] = np.zeros(3)
    assert nxs2tiff_main(["-d", "data", vds, str(tmp_path / "out")]) == 2
    assert "(1 of 2: part1.h5:data)" in capsys.readouterr().err


def test_a_file_whose_image_data_all_dangle_names_the_links_and_the_missing_files(tmp_path, capsys):
    path = tmp_path / "gda.nxs"
    with h5py.File(path, "w") as file:
        file["entry1/instrument/pco/data"] = h5py.ExternalLink("pco-23912.h5", "/entry/data/data")
        file["entry1/tomo_entry/data/data"] = h5py.SoftLink("/entry1/instrument/missing/data")
        file["entry1/title"] = "a scan"
        file["entry1/flat"] = np.zeros((4, 4))  # rank 2: one image, not a stack
    assert nxs2tiff_main([str(path), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "the file holds no stacks of images (numeric datasets of rank >= 3)" in error
    assert "/entry1/instrument/pco/data -> pco-23912.h5:/entry/data/data" in error
    assert "/entry1/tomo_entry/data/data -> /entry1/instrument/missing/data" in error
    assert "copy pco-23912.h5 beside gda.nxs" in error


def test_a_rank_2_dataset_says_stacks_of_images_as_the_listing_does(tmp_path, capsys):
    path = tmp_path / "one.h5"
    with h5py.File(path, "w") as file:
        file["image"] = np.zeros((4, 4), np.float32)
    assert nxs2tiff_main(["--fp", "-d", "image", str(path), str(tmp_path / "out")]) == 2
    assert "tomotiff reads stacks of images (numeric datasets of rank >= 3)" in capsys.readouterr().err
