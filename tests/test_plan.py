"""The plan (tomotiff.plan) and its run (tomotiff.pipeline, tomotiff.engine): image sets computed
once and immutable, sources left untouched, and several products from one read."""

import json

import numpy as np
import pytest
import tifffile

from tomotiff import engine, pipeline
from tomotiff.errors import TomotiffError
from tomotiff.plan import Destination, Layout, Product, Request, SourceRequest, make_plan
from tomotiff.source import Hdf5Source
from tomotiff.synthetic import raw_keys, write_gda_raw, write_savu_recon
from tomotiff.window import Window, WindowRequest

GDA = "/entry1/instrument/pco1_hw_hdf/data"
SAVU = "/entry/final_result_tomo/data"


@pytest.fixture
def raw_scan(tmp_path):
    """A raw scan: 4 darks, 4 flats, 20 projections, as GDA writes them (synthetic.raw_keys's order)."""
    path = tmp_path / "raw.nxs"
    write_gda_raw(str(path), projections=20, flats=4, darks=4, height=12, width=10)
    return str(path)


def request_of(path: str, out, **choices) -> Request:
    source = SourceRequest(path, "hdf5", GDA, begin=choices.pop("begin", 0), stop=choices.pop("stop", None))
    products = choices.pop("products", (Product(8, WindowRequest(0, 40000)),))
    return Request(source, products, Destination(str(out)), **choices)


def test_the_plan_chooses_windows_from_projections_and_splits_by_kind(raw_scan, tmp_path):
    keys = raw_keys(20, 4, 4)
    request = request_of(raw_scan, tmp_path / "out", split_keys=True)
    with request.source.open() as source:
        plan = make_plan(request, source)
    assert plan.window_images.tolist() == np.flatnonzero(keys == 0).tolist()
    assert [group.images.kind for group in plan.groups] == ["projections", "flats", "darks"]
    assert [group.images.indices.tolist() for group in plan.groups] == [
        np.flatnonzero(keys == code).tolist() for code in (0, 1, 2)
    ]
    assert [group.targets[0].directory for group in plan.groups] == [
        str(tmp_path / "out" / kind) for kind in ("projections", "flats", "darks")
    ]
    with pytest.raises(ValueError):
        plan.groups[0].images.indices[0] = 99  # computed once, never changed
    with pytest.raises(ValueError):
        plan.window_images[0] = 99


def test_a_shard_may_hold_none_of_a_kind_but_the_scan_must(raw_scan, tmp_path):
    flats = np.flatnonzero(raw_keys(20, 4, 4) == 1)
    shard = request_of(raw_scan, tmp_path, keys="flats", begin=6, stop=20, scan_range=(0, 28))
    with shard.source.open() as source:
        assert make_plan(shard, source).groups[0].images.indices.size == 0
    whole = request_of(raw_scan, tmp_path, keys="flats", begin=6, stop=20)
    with whole.source.open() as source, pytest.raises(TomotiffError, match="no flats among images 6..19"):
        make_plan(whole, source)
    assert not np.any((flats >= 6) & (flats < 20)) and flats.size


def test_several_products_from_one_read_equal_separate_runs(tmp_path):
    path = tmp_path / "recon.nxs"
    write_savu_recon(str(path), height=20, count=9, width=16, chunks=(4, 3, 4))
    window = Window(-0.0005, 0.0015, "explicit")
    products = (Product(8, window), Product(16, window), Product(32))
    source = SourceRequest(str(path), "hdf5", SAVU, axis=1)
    reads = []

    class CountingSource(Hdf5Source):
        def read_tiles(self, first, last, row_multiple=1):
            reads.append((first, last))
            yield from super().read_tiles(first, last, row_multiple)

    request = Request(source, products, Destination(str(tmp_path / "all"), by_product=True), layout=Layout(binning=2))
    with CountingSource(str(path), SAVU, 1) as opened:
        plan = make_plan(request, opened)
        conversions = [pipeline.conversion_of(opened, plan, p, False, print, print) for p in products]
        pipeline.write_group(opened, plan, plan.groups[0], conversions, 2, False, print, print)
        blocks = opened.blocks(np.arange(9))
    assert sorted(reads) == blocks  # one read per block, for all three products
    with tifffile.TiffFile(tmp_path / "all/u16/image_00004.tif") as tif:
        assert tif.pages[0].asarray().shape == (10, 8)
    for product in products:
        alone = tmp_path / f"alone-{product.name}"
        pipeline.run(Request(source, (product,), Destination(str(alone)), layout=Layout(binning=2)), say=lambda _: None)
        ours = json.loads((tmp_path / f"all/{product.name}/manifest.json").read_text())
        assert ours == json.loads((alone / "manifest.json").read_text())


def test_every_image_entry_says_where_it_came_from(raw_scan, tmp_path):
    request = request_of(raw_scan, tmp_path / "out", stop=10)
    (written,) = pipeline.run(request, say=lambda _: None)
    keys = raw_keys(20, 4, 4)
    assert [entry["image_key"] for entry in written["images"]] == keys[:10].tolist()  # integers, as stored
    assert all(isinstance(entry["image_key"], int) for entry in written["images"])
    assert written["versions"]["h5py"] and written["versions"]["hdf5"] and written["versions"]["tifffile"]
    with tifffile.TiffFile(tmp_path / "out/image_00005.tif") as tif:
        meta = json.loads(tif.pages[0].description)
    assert meta["image_key"] == int(keys[5]) and "versions" not in meta and "count" not in meta


def test_the_stream_reads_the_images_asked_for_once(tmp_path):
    path = tmp_path / "recon.nxs"
    write_savu_recon(str(path), height=8, count=12, width=8, chunks=(8, 4, 8))
    with Hdf5Source(str(path), SAVU, 1) as source:
        seen = [(len(arrays), done) for arrays, done in engine.stream(source, np.array([1, 2, 9]))]
        volume = np.stack([source.read_image(i) for i in (1, 2, 9)])
        pixels = np.concatenate(
            [a.reshape(-1) for arrays, _ in engine.stream(source, np.array([1, 2, 9])) for a in arrays]
        )
    assert sum(done for _, done in seen) == 3
    assert np.array_equal(np.sort(pixels), np.sort(volume.reshape(-1)))
