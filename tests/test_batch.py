"""The workflow's library side without Snakemake runs: the batch config resolved into scans
(errors naming the scan and the key), the planning queries, and the deleted-image repair."""

import copy
import json

import numpy as np
import pytest

from conftest import REPO
from tomotiff import batch, synthetic
from tomotiff.errors import TomotiffError

SCHEMA = str(REPO / "config" / "schema.yaml")
GDA = "/entry1/instrument/pco1_hw_hdf/data"


def load(config: dict) -> dict[str, dict]:
    return batch.load(copy.deepcopy(config), SCHEMA)


@pytest.mark.parametrize(
    "scan, expected",
    [
        (
            {"id": 5, "input": "a.nxs", "windw": {"lo": 1}},
            "scan 5 (scans[0]): Additional properties are not allowed ('windw'",
        ),
        ({"id": "../etc", "input": "a.nxs"}, "scan ../etc (scans[0]): id: '../etc' is not valid"),
        ({"id": "a..b", "input": "a.nxs"}, "scan a..b (scans[0]): id:"),
        ({"id": "a/b", "input": "a.nxs"}, "scan a/b (scans[0]): id:"),
        ({"id": 5, "input": "a.nxs", "output_pattern": "../{scan}_%05d.tif"}, "scan 5 (scans[0]): output_pattern"),
        (
            {"id": 5, "input": "a.nxs", "output_pattern": ".{scan}_%05d.tif"},
            "output_pattern '.5_%05d.tif' must be a plain",
        ),
        (
            {"id": 5, "input": "a.nxs", "output_pattern": "x_%s.tif"},
            "scan 5 (scans[0]): output_pattern 'x_%s.tif' must",
        ),
        ({"id": 5, "input": "a.nxs", "bits": [8, 12]}, "scan 5 (scans[0]): bits.1: 12 is not one of [8, 16, 32]"),
        ({"id": 5, "input": "a.nxs", "axis": "1"}, "scan 5 (scans[0]): axis: '1' is not of type 'integer'"),
        ({"id": 5, "input": "a.nxs", "window": {"lo": 2, "hi": 1}}, "scan 5 (scans[0]): window of u8: hi (1) must be"),
        ({"id": 5, "input": "{scan}/{run}.nxs"}, "scan 5 (scans[0]): input '{scan}/{run}.nxs': the only placeholder"),
        ({"id": "9-7", "input": "a.nxs"}, "scan 9-7 (scans[0]): id range 9-7 ends before it starts"),
        ({"id": "1-100001", "input": "a.nxs"}, "scan 1-100001 (scans[0]): id range 1-100001 holds more than 100000"),
        ({"id": 5, "input": "a.nxs", "crop": [1, 2, 3]}, "scan 5 (scans[0]): crop: [1, 2, 3] is too short"),
        ({"id": 5, "input": "a.nxs", "bin": 3}, "scan 5 (scans[0]): bin: 3 is not one of [1, 2, 4]"),
        (
            {"id": 5, "input": "a.nxs", "stop": 4, "begin": 4},
            "scan 5 (scans[0]): stop (4) must be greater than begin (4)",
        ),
        (
            {"id": 5, "input": "a.nxs", "window": {"method": "local"}},
            "scan 5 (scans[0]): window.method: 'local' is not",
        ),
        (
            {"id": 5, "input": "d", "input_pattern": "r_%03d.tif", "keys": "flats"},
            "scan 5 (scans[0]): keys: 'flats' applies to HDF5 raw scans only",
        ),
        (
            {"id": 5, "input": "d", "input_pattern": "r_%03d.tif", "split_keys": True},
            "scan 5 (scans[0]): split_keys: True applies to HDF5 raw scans only",
        ),
        (
            {"id": 5, "input": "a.nxs", "split_keys": True, "keys": "darks"},
            "scan 5 (scans[0]): split_keys writes every kind of image, each into its own directory; "
            "leave out keys: darks",
        ),
    ],
)
def test_config_errors_name_the_key_and_the_scan(scan, expected):
    with pytest.raises(batch.ConfigError) as raised:
        load({"scans": [scan]})
    assert str(raised.value).startswith("config: ") and expected in str(raised.value), str(raised.value)


def test_errors_outside_the_scans_and_duplicates():
    with pytest.raises(batch.ConfigError, match=r"config: defaults: Additional properties are not allowed \('bitz'"):
        load({"defaults": {"bitz": [8]}, "scans": [{"id": 1, "input": "a.nxs"}]})
    with pytest.raises(batch.ConfigError, match=r"config: scan 6 \(scans\[1\]\): scan 6 is also listed in scans\[0\]"):
        load({"scans": [{"id": "5-7", "input": "a.nxs"}, {"id": 6, "input": "b.nxs"}]})


def test_defaults_ranges_and_templates_resolve_as_the_commands_take_them():
    scans = load(
        {
            "defaults": {
                "shard_size": 50,
                "dataset": "/entry/data",
                "stop": 120,
                "bits": [16, 8],
                "window": {"percent": 0.1},
            },
            "scans": [
                {"id": "0098-0101", "input": "/raw/{scan}.nxs", "windows": {"u16": {"lo": 0, "hi": 9}}},
                {
                    "id": "tiffs",
                    "input": "slices/{scan}",
                    "input_pattern": "recon_{scan}_%05d.tif",
                    "stop": 10,
                    "output_pattern": "{scan}-%d.tif",
                    "crop": [1, 2, 3, 4],
                },
            ],
        }
    )
    assert list(scans) == ["0098", "0099", "0100", "0101", "tiffs"]
    raw, tiffs = scans["0100"], scans["tiffs"]
    assert (raw["kind"], raw["input"], raw["depths"], raw["stop"]) == ("hdf5", "/raw/0100.nxs", ["u8", "u16"], 120)
    assert raw["windows"]["u8"] == {
        "lo": None,
        "hi": None,
        "reference": None,
        "percent": 0.1,
        "method": "reference",
        "sample": 1,
    }
    assert (raw["windows"]["u16"]["lo"], raw["windows"]["u16"]["hi"]) == (0, 9)
    assert (tiffs["kind"], tiffs["input_pattern"], tiffs["dataset"]) == ("tiff", "recon_tiffs_%05d.tif", None)
    assert (tiffs["output_pattern"], tiffs["crop"], tiffs["stop"]) == ("tiffs-%d.tif", [1, 2, 3, 4], 10)
    assert batch.Planner(scans).shard_ranges("0100") == [(0, 49), (50, 99), (100, 119)]


def test_shards_fall_on_multiples_of_the_shard_size_and_a_stack_is_one_shard():
    scans = load(
        {
            "defaults": {"shard_size": 32, "stop": 100},
            "scans": [{"id": 1, "input": "a.nxs", "begin": 7}, {"id": 2, "input": "a.nxs", "stack": True}],
        }
    )
    planner = batch.Planner(scans)
    assert planner.shard_ranges("1") == [(7, 31), (32, 63), (64, 95), (96, 99)]
    assert planner.shard_ranges("2") == [(0, 99)]


def test_planning_reads_metadata_only_and_knows_the_demo_scans(tmp_path):
    path = tmp_path / "raw.nxs"
    synthetic.write_gda_raw(str(path), projections=20, flats=4, darks=4)
    scans = load(
        {
            "defaults": {"dataset": GDA, "shard_size": 8, "split_keys": True},
            "scans": [
                {"id": "real", "input": str(path)},
                {"id": "missing", "input": str(tmp_path / "no.nxs")},
                {"id": "demo", "input": "resources/demo/gda/{scan}.nxs"},
            ],
        }
    )
    planner = batch.Planner(scans)
    assert planner.scan_range("real") == (0, 28)
    keys = synthetic.raw_keys(20, 4, 4)
    assert planner.kinds_in_range("real") == {
        kind: np.flatnonzero(keys == code).tolist() for kind, code in (("projections", 0), ("flats", 1), ("darks", 2))
    }
    assert planner.shard_ranges("real", "flats") == [(0, 7), (24, 27)]
    assert planner.scan_range("missing") is None and planner.parts("missing") == ["projections"]
    assert planner.scan_range("demo") == (0, synthetic.demo_length("gda"))
    assert planner.parts("demo") == ["projections", "flats", "darks"]


def test_records_of_shards_with_deleted_images_are_forgotten(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    scans = load({"scans": [{"id": 3, "input": "a.nxs", "stop": 8, "shard_size": 4, "output_pattern": "i%d.tif"}]})
    images, records = tmp_path / "results/3/u8", tmp_path / "results/3/.work/u8"
    images.mkdir(parents=True)
    records.mkdir(parents=True)
    for first in (0, 4):
        (records / f"{first:05d}-{first + 3:05d}.json").write_text(json.dumps({"images": []}))
    for index in (0, 1, 2, 3, 4, 6, 7):  # image 5 was deleted
        (images / f"i{index}.tif").write_text("")
    (images / "manifest.json").write_text("{}")
    said = []
    batch.forget_incomplete_shards(scans, said.append)
    assert said == [
        "scan 3 u8: i5.tif of shard 4-7 missing; removed its record and manifest.json so that they are rewritten"
    ]
    assert sorted(p.name for p in records.iterdir()) == ["00000-00003.json"]
    assert not (images / "manifest.json").exists()


def test_expand_ids_keeps_zero_padding():
    assert batch.expand_ids("0098-0101") == ["0098", "0099", "0100", "0101"]
    assert batch.expand_ids(7) == ["7"] and batch.expand_ids("x-1") == ["x-1"]
    with pytest.raises(TomotiffError, match="ends before it starts"):
        batch.expand_ids("5-4")
