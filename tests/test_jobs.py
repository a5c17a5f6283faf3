"""The workflow's jobs (tomotiff.jobs) called in-process, as the Snakemake scripts call them:
window, shards and merge give the manifest one command over the whole range writes."""

import json

import pytest

from conftest import REPO
from tomotiff import batch, jobs
from tomotiff.cli import nxs2tiffux_main
from tomotiff.errors import TomotiffError
from tomotiff.synthetic import write_gda_raw

SCHEMA = REPO / "config" / "schema.yaml"
GDA = "/entry1/instrument/pco1_hw_hdf/data"
SOURCE_KEYS = ("id", "kind", "input", "dataset", "axis", "input_pattern", "begin", "stop", "crop", "image_key_path")


def spec_of(scan: dict, **more) -> dict:
    """The params rules/common.smk gives a job (source_spec and the job's own keys)."""
    return {**{key: scan[key] for key in SOURCE_KEYS}, **more}


@pytest.mark.parametrize("keys", ["all", "flats"])
def test_window_shards_and_merge_write_what_the_command_writes(tmp_path, monkeypatch, keys):
    monkeypatch.chdir(tmp_path)
    write_gda_raw("raw.nxs", projections=20, flats=4, darks=4, height=12, width=10)
    config = {
        "scans": [
            {
                "id": 7,
                "input": "raw.nxs",
                "dataset": GDA,
                "keys": keys,
                "shard_size": 8,
                "window": {"percent": 1},
                "output_pattern": "r_%03d.tif",
            }
        ]
    }
    scan = batch.load(config, str(SCHEMA))["7"]
    planner = batch.Planner({"7": scan})
    said = []
    jobs.window(spec_of(scan, depth="u8", window=scan["windows"]["u8"], mask=scan["mask"]), "window.json", said.append)
    receipts = []
    for first, last in planner.shard_ranges("7"):
        receipts.append(batch.receipt_path("7", first, last))
        jobs.shard(
            spec_of(
                scan,
                first=first,
                last=last,
                depths=scan["depths"],
                keys=keys,
                split=False,
                scan_range=list(planner.scan_range("7")),
                layout=scan["layout"],
                output_pattern=scan["output_pattern"],
            ),
            ["window.json"],
            receipts[-1],
            2,
            said.append,
        )
    jobs.merge(
        {"id": "7", "depth": "u8", "keys": keys, "range": planner.scan_range("7")},
        receipts,
        "results/7/u8/manifest.json",
        said.append,
    )
    assert nxs2tiffux_main(["-q", "-d", GDA, "-p", "1", "--keys", keys, "-o", "r_%03d.tif", "raw.nxs", "cli"]) == 0
    ours = json.loads((tmp_path / "results/7/u8/manifest.json").read_text())
    theirs = json.loads((tmp_path / "cli/manifest.json").read_text())
    assert ours == theirs
    assert ours["clipping"]["images"] == (20 if keys == "all" else 4)  # a raw scan's projections count
    assert any("window: lo=" in line for line in said)
    jobs.stats(
        spec_of(scan, reference=None, mask=scan["mask"]),
        ["window.json"],
        ["results/7/u8/manifest.json"],
        "results/7/stats.json",
        said.append,
    )
    stats = json.loads((tmp_path / "results/7/stats.json").read_text())
    assert stats["clipping"] == {"u8": ours["clipping"]} and stats["mask"] is None


def receipt(tmp_path, name: str, record: dict) -> str:
    """A shard's record of its u8 images, and the receipt naming it."""
    (tmp_path / f"{name}.record.json").write_text(json.dumps(record))
    (tmp_path / f"{name}.json").write_text(json.dumps({"records": {"u8": str(tmp_path / f"{name}.record.json")}}))
    return str(tmp_path / f"{name}.json")


def test_merge_refuses_shards_that_do_not_tile_the_range(tmp_path):
    shard = {
        "begin": 0,
        "stop": 4,
        "count": 4,
        "bits": 8,
        "images": [{"index": i, "file": f"{i}.tif"} for i in range(4)],
    }
    first = receipt(tmp_path, "a", shard)
    with pytest.raises(TomotiffError, match=r"scan 7 u8: the shards do not cover images 0..5 exactly once"):
        jobs.merge({"id": "7", "depth": "u8", "keys": "all", "range": [0, 6]}, [first], str(tmp_path / "m.json"), print)
    other = {
        **shard,
        "begin": 4,
        "stop": 6,
        "bits": 16,
        "images": [{"index": 4, "file": "4.tif"}, {"index": 5, "file": "5.tif"}],
    }
    second = receipt(tmp_path, "b", other)
    with pytest.raises(TomotiffError, match=r"images 4..5 differs from the others in bits"):
        jobs.merge(
            {"id": "7", "depth": "u8", "keys": "all", "range": [0, 6]}, [first, second], str(tmp_path / "m.json"), print
        )
    assert not (tmp_path / "m.json").exists()


def test_messages_name_the_config_keys_not_the_commands_options():
    said = "dataset '/x' not found in a.nxs; image datasets there: /entry/data (9, 4, 5) uint16; choose one with -d"
    assert jobs.in_config_terms(said).endswith("choose one with dataset")
    assert jobs.in_config_terms("give its path with --image-key-path, or drop --keys/--split-keys") == (
        "give its path with image_key_path, or drop keys/split_keys"
    )
    assert (
        jobs.in_config_terms("-s/--stop 9 is out of range; -p/--percent 60")
        == "stop 9 is out of range; window: percent 60"
    )
    assert jobs.in_config_terms("see file-d or --deep") == "see file-d or --deep"  # whole options only
