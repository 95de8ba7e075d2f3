"""Earth Engine source (issue 7), offline: real expression graphs from earthengine-api's own test harness
(``ee/tests/algorithms.json`` loaded as in ``ee.apitestcase``), and a fake transport in place of the server."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_sar_plugin.core.detect import DetectParams
from landslide_sar_plugin.core.grid import Grid, parse_aoi
from landslide_sar_plugin.core.staging import Cancelled, DetectionError

ee = pytest.importorskip("ee", reason="earthengine-api is not installed")

from landslide_sar_plugin.core.earthengine import auth, download, graph  # noqa: E402
from landslide_sar_plugin.core.earthengine import run as eerun  # noqa: E402

EVENT = dt.datetime(2018, 9, 5, 18, 8, tzinfo=dt.timezone.utc)
AOI = "500000,4700000,500640,4700640,EPSG:32654"  # 64 x 64 pixels at 10 m
SLIDE = (200, 360)  # metres from the AOI's west / north edge: a 16 x 16 px scar


# --------------------------------------------------------------------------- offline ee


def resolved(obj) -> dict:
    """The serialized graph with every valueReference replaced by its value (a plain tree)."""
    enc = ee.serializer.encode(obj, for_cloud_api=True)
    values = enc["values"]

    def res(node):
        if isinstance(node, dict):
            if set(node) == {"valueReference"}:
                return res(values[node["valueReference"]])
            if "functionDefinitionValue" in node:  # a mapped function: its body is a reference
                fdv = node["functionDefinitionValue"]
                return {"functionDefinitionValue": {**fdv, "body": res(values[fdv["body"]])}}
            return {k: res(v) for k, v in node.items()}
        if isinstance(node, list):
            return [res(v) for v in node]
        return node

    return res(values[enc["result"]])


def calls(tree, name: str | None = None) -> list[dict]:
    """Every function invocation (optionally only ``name``) in a resolved tree."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            fiv = node.get("functionInvocationValue")
            if fiv and (name is None or fiv["functionName"] == name):
                found.append(fiv)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(tree)
    return found


def const(node):
    if isinstance(node, dict) and "arrayValue" in node:
        return [const(v) for v in node["arrayValue"]["values"]]
    return node.get("constantValue") if isinstance(node, dict) else None


def params(**kw) -> DetectParams:
    base = dict(event_time=EVENT, pre_days=40, post_days=20, aoi=parse_aoi(AOI), slope_min_deg=10.0,
                threshold_db=1.25, speckle_sigma_m=0.0, min_area_m2=100.0, heatmap_radius_m=30.0, block_size=64,
                polarisation="VH", ratio_sigma_m=0.0, ratio_radius_m=0.0, detrend_radius_m=0.0)
    base.update(kw)
    return DetectParams(**base)


def ms(t):
    return graph.to_ms(t)


ROWS = [  # system:index, time, pass, relative orbit
    ["S1A_IW_GRDH_1SDV_20180806T083512_A", ms(EVENT - dt.timedelta(days=30)), "ASCENDING", 39],
    ["S1A_IW_GRDH_1SDV_20180818T083512_A", ms(EVENT - dt.timedelta(days=18)), "ASCENDING", 39],
    ["S1A_IW_GRDH_1SDV_20180830T083512_A", ms(EVENT - dt.timedelta(days=6)), "ASCENDING", 39],
    ["S1A_IW_GRDH_1SDV_20180911T083512_A", ms(EVENT + dt.timedelta(days=6)), "ASCENDING", 39],
    ["S1B_IW_GRDH_1SDV_20180811T203512_D", ms(EVENT - dt.timedelta(days=25)), "DESCENDING", 46],
    ["S1B_IW_GRDH_1SDV_20180823T203512_D", ms(EVENT - dt.timedelta(days=13)), "DESCENDING", 46],
    ["S1B_IW_GRDH_1SDV_20180908T203512_D", ms(EVENT + dt.timedelta(days=3)), "DESCENDING", 46],
    ["S1B_IW_GRDH_1SDV_20180820T203512_X", ms(EVENT - dt.timedelta(days=16)), "DESCENDING", 112],  # pre only
]


class FakeTransport:
    """Serves the listing and synthetic pixels in computePixels' NUMPY_NDARRAY format; records every call."""

    def __init__(self, rows=ROWS, fail=None):
        self.rows = rows
        self.fail = fail  # fail(request) -> Exception | None
        self.info_calls = []
        self.pixel_calls = []

    @property
    def n_calls(self):
        return len(self.info_calls) + len(self.pixel_calls)

    def get_info(self, obj):
        self.info_calls.append(obj)
        return {"list": [list(r) for r in self.rows]}

    def compute_pixels(self, request):
        self.pixel_calls.append(request)
        if self.fail is not None:
            exc = self.fail(request)
            if exc is not None:
                raise exc
        g = request["grid"]
        w, h = g["dimensions"]["width"], g["dimensions"]["height"]
        a = g["affineTransform"]
        x = a["translateX"] + a["scaleX"] * (np.arange(w) + 0.5)
        y = a["translateY"] + a["scaleY"] * (np.arange(h) + 0.5)
        xx, yy = np.meshgrid(x - 500000, 4700640 - y)
        scar = (xx > SLIDE[0]) & (xx < SLIDE[0] + 160) & (yy > SLIDE[1] - 160) & (yy < SLIDE[1])
        out = np.zeros((h, w), dtype=[(b, "<f4") for b in request["bandIds"]])
        for b in request["bandIds"]:
            if b == "DEM":
                v = 0.5 * xx  # a 26.6 degree plane
            elif b.endswith("_count"):
                v = np.full((h, w), 3.0 if "_pre_" in b else 1.0)
            elif b.startswith("count_"):
                v = np.full((h, w), 3.0 if b.endswith("pre") else 1.0)
            elif b.endswith("_pre"):
                v = np.full((h, w), -12.0)
            elif b.endswith("_post"):
                v = np.where(scar, -18.0, -12.0)
            elif b.startswith("a_ratio"):
                v = np.where(scar, 6.0, 0.0)
            elif b == "mask_code":
                v = np.zeros((h, w))
            else:
                raise AssertionError(f"unexpected band {b}")
            out[b] = v
        return out


# --------------------------------------------------------------------------- graphs


def _server_tree(offline_ee, **kw):
    p = params(**kw)
    listing = eerun.list_scenes(p, transport=FakeTransport())
    image, names = graph.server_products(offline_ee, listing.query, graph.stack_specs(listing.selection), p,
                                         listing.grid)
    return resolved(image), names, listing, p


def test_listing_graph_has_every_filter(offline_ee):
    p = params(polarisation="both")
    fake = FakeTransport()
    listing = eerun.list_scenes(p, transport=fake, orbit_pass="desc")
    tree = resolved(fake.info_calls[0])
    assert [const(c["arguments"]["id"]) for c in calls(tree, "ImageCollection.load")] == ["COPERNICUS/S1_GRD"]
    rect = calls(tree, "GeometryConstructors.Rectangle")[0]["arguments"]
    assert const(rect["coordinates"]) == pytest.approx(list(listing.query.bounds_lonlat))
    w, s, e, n = const(rect["coordinates"])
    assert 140.99 < w < e < 141.02 and 42.43 < s < n < 42.47  # the AOI in lon/lat (UTM 54N)
    dates = calls(tree, "DateRange")[0]["arguments"]
    assert const(dates["start"]) == ms(EVENT - dt.timedelta(days=40))
    assert const(dates["end"]) == ms(EVENT + dt.timedelta(days=20)) + 1
    eqs = {const(c["arguments"]["leftField"]): const(c["arguments"]["rightValue"])
           for c in calls(tree, "Filter.equals")}
    assert eqs == {"instrumentMode": "IW", "orbitProperties_pass": "DESCENDING"}
    pols = sorted(const(c["arguments"]["rightValue"]) for c in calls(tree, "Filter.listContains"))
    assert pols == ["VH", "VV"]
    assert {const(c["arguments"]["leftField"]) for c in calls(tree, "Filter.listContains")} == \
        {"transmitterReceiverPolarisation"}
    cols = calls(tree, "Collection.reduceColumns")[0]["arguments"]
    assert const(cols["selectors"]) == graph.LIST_COLUMNS


def test_listing_groups_like_the_local_catalogue(offline_ee):
    listing = eerun.list_scenes(params(), transport=FakeTransport())
    sel = listing.selection
    assert sel.tracks() == [("ASCENDING", 39), ("DESCENDING", 46)]
    assert [s.scene_id for s in sel.pre[("ASCENDING", 39)]] == [r[0] for r in ROWS[:3]]
    assert [s.scene_id for s in sel.post[("DESCENDING", 46)]] == [ROWS[6][0]]
    counts = {(c["orbit_pass"], c["relative_orbit"]): (c["pre"], c["post"], c["used"]) for c in listing.counts()}
    assert counts == {("ASCENDING", 39): (3, 1, True), ("DESCENDING", 46): (2, 1, True),
                      ("DESCENDING", 112): (1, 0, False)}
    rows = listing.table_rows()
    assert len(rows) == 8 and rows[0]["role"] == "pre" and {r["role"] for r in rows} == {"pre", "post"}
    assert any("not used" in line for line in listing.summary_lines())


def test_listing_refusals(offline_ee):
    pre_only = [r for r in ROWS if r[1] < ms(EVENT)]
    with pytest.raises(DetectionError, match="no orbit track has both"):
        eerun.list_scenes(params(), transport=FakeTransport(pre_only))
    with pytest.raises(DetectionError, match="no VH IW scene"):
        eerun.list_scenes(params(), transport=FakeTransport([]))
    late_pre = (EVENT - dt.timedelta(days=5), EVENT + dt.timedelta(days=1))
    with pytest.raises(DetectionError, match="pre-event scenes must predate the event"):
        eerun.list_scenes(params(pre_range=late_pre), transport=FakeTransport())
    with pytest.raises(DetectionError, match="area of interest"):
        eerun.list_scenes(params(aoi=None), transport=FakeTransport())


def test_server_graph_definitions(offline_ee):
    tree, names, listing, p = _server_tree(offline_ee, curv_min=-0.005, speckle_sigma_m=10.0)
    assert names == ["a_ratio", "a_ratio_ascending", "a_ratio_descending", "mask_code", "count_ascending_pre",
                     "count_ascending_post", "count_descending_pre", "count_descending_post"]
    # -30 dB edge mask on each image (kept where > -30), before the median
    gts = calls(tree, "Image.gt")
    assert gts
    assert all(const(calls(g["arguments"]["image2"], "Image.constant")[0]["arguments"]["value"]) == -30 for g in gts)
    medians = list({json.dumps(m, sort_keys=True): m for m in calls(tree, "reduce.median")}.values())
    assert len(medians) == 4  # 2 tracks x (pre, post)
    for m in medians:
        body = json.dumps(m)
        assert '"Image.updateMask"' in body and '"Image.gt"' in body and '"bilinear"' in body
        sel = calls(m, "Image.select")
        assert {tuple(const(v) for v in s["arguments"]["bandSelectors"]["arrayValue"]["values"])
                for s in sel} == {("VH",)}
    # relative orbit and pinned image ids per stack
    rel = {const(c["arguments"]["rightValue"]) for c in calls(tree, "Filter.equals")
           if const(c["arguments"]["leftField"]) == "relativeOrbitNumber_start"}
    assert rel == {39, 46}
    pinned = [const(c["arguments"]["leftValue"]) for c in calls(tree, "Filter.listContains")
              if const(c["arguments"].get("rightField", {})) == "system:index"]
    assert [r[0] for r in ROWS[:3]] in pinned and [ROWS[6][0]] in pinned
    # ratio sign: pre - post (image1's stack has the pre window, image2's the post window)
    subs = list({json.dumps(s, sort_keys=True): s for s in calls(tree, "Image.subtract")}.values())
    assert len(subs) == 2
    for s in subs:
        start1 = const(calls(s["arguments"]["image1"], "DateRange")[0]["arguments"]["start"])
        start2 = const(calls(s["arguments"]["image2"], "DateRange")[0]["arguments"]["start"])
        assert start1 == ms(EVENT - dt.timedelta(days=40))  # image1: the pre-event stack
        assert start2 == ms(EVENT)  # image2: the post-event stack (starts just after the event)
    # speckle: Gaussian 20 m radius, 10 m sigma on each median; curvature 60/30 m
    kernels = sorted((const(k["arguments"]["radius"]), const(k["arguments"]["sigma"]))
                     for k in calls(tree, "Kernel.gaussian"))
    assert (20.0, 10.0) in kernels and (60.0, 30.0) in kernels
    # pass averaging: mean over the two pass ratios
    means = calls(tree, "reduce.mean")
    assert means, "passes are not averaged"
    # slope and curvature thresholds on GLO-30
    assert [const(c["arguments"]["id"]) for c in calls(tree, "ImageCollection.load")].count("COPERNICUS/DEM/GLO30")
    assert calls(tree, "Collection.mosaic") or calls(tree, "ImageCollection.mosaic")
    assert calls(tree, "Terrain.slope")
    gte = sorted(const(calls(g["arguments"]["image2"], "Image.constant")[0]["arguments"]["value"])
                 for g in calls(tree, "Image.gte"))
    assert gte == [-0.005, 10.0]
    assert len(calls(tree, "Image.gradient")) >= 3


def test_server_graph_exact_structure(offline_ee):
    """The ratio is (mean over passes) of (pre median - post median); a flipped sign or band fails here."""
    p = params()
    listing = eerun.list_scenes(p, transport=FakeTransport())
    specs = graph.stack_specs(listing.selection)
    image, _ = graph.server_products(offline_ee, listing.query, specs, p, listing.grid)
    q, g = listing.query, listing.grid

    def med(track, role):
        spec = next(s for s in specs if s.track == track and s.role == role)
        col = graph.stack_collection(offline_ee, q, spec.start, spec.end, track, spec.ids)
        masked = col.map(lambda i: ee.Image(i).select(["VH"]).resample("bilinear")
                         .updateMask(ee.Image(i).select(["VH"]).resample("bilinear").gt(p.edge_noise_db)))
        return graph.on_grid(masked.median(), g)

    ratios = [med(t, "pre").subtract(med(t, "post")).rename("a_ratio").rename("a_ratio").rename("a_ratio")
              for t in listing.selection.tracks()]
    expected = ee.ImageCollection(ratios).mean().rename("a_ratio")
    got = ee.Image(image).select(["a_ratio"])
    got_tree = calls(resolved(got), "Image.select")[0]["arguments"]["input"]
    exp_tree = calls(resolved(ee.Image.cat([expected]).select(["a_ratio"])), "Image.select")[0]["arguments"]["input"]
    exp_ratio = json.dumps(calls(exp_tree, "reduce.mean")[0], sort_keys=True)
    got_ratio = json.dumps(calls(got_tree, "reduce.mean")[0], sort_keys=True)
    assert got_ratio == exp_ratio


def test_dem_graph(offline_ee):
    tree = resolved(graph.dem_image(offline_ee))
    assert {const(c["arguments"]["id"]) for c in calls(tree, "ImageCollection.load")} == {"COPERNICUS/DEM/GLO30"}
    sel = calls(tree, "Image.select") + calls(tree, "Collection.map")
    assert '"DEM"' in json.dumps(sel) and calls(tree, "ImageCollection.mosaic")


# --------------------------------------------------------------------------- tiles, split, retry, cache


def test_tile_budget_arithmetic():
    assert download.REQUEST_LIMIT_BYTES == 50_331_648
    assert download.bytes_per_pixel(1) == 5 and download.bytes_per_pixel(8) == 33
    # 50331648 // 5 = 10066329 px -> isqrt 3172 -> multiple of 256: 3072
    assert download.tile_side(1) == 3072
    assert download.tile_bytes(3072, 3072, 1) == 47_185_920 <= download.REQUEST_LIMIT_BYTES
    assert download.tile_bytes(3328, 3328, 1) > download.REQUEST_LIMIT_BYTES  # the next multiple is too big
    # 4 bands: 50331648 // 17 = 2960685 -> 1720 -> 1536; 8 bands: // 33 = 1525201 -> 1234 -> 1024
    assert download.tile_side(4) == 1536 and download.tile_side(8) == 1024
    # without the mask byte 4 bands would give 1792 (50331648 // 16 = 3145728 -> 1773 -> 1536); 2 bands:
    # counting the mask: // 9 = 5592405 -> 2364 -> 2304; not counting it: // 8 = 6291456 -> 2508 -> 2304
    assert download.tile_side(2) == 2304
    assert download.tile_side(1, budget=1000) == 14  # below 256 px: no rounding (1000 // 5 = 200 -> 14)
    from affine import Affine
    from rasterio.crs import CRS

    grid = Grid(CRS.from_epsg(32654), Affine(10, 0, 0, 0, -10, 0), 5000, 3000)
    tiles = download.plan_tiles(grid, 1)
    assert [(int(t.col_off), int(t.row_off), int(t.width), int(t.height)) for t in tiles] == \
        [(0, 0, 3072, 3000), (3072, 0, 1928, 3000)]
    assert download.split_window(tiles[1]) == [
        rasterio.windows.Window(3072, 0, 964, 1500), rasterio.windows.Window(4036, 0, 964, 1500),
        rasterio.windows.Window(3072, 1500, 964, 1500), rasterio.windows.Window(4036, 1500, 964, 1500)]


def _grid64():
    from affine import Affine
    from rasterio.crs import CRS

    return Grid(CRS.from_epsg(32654), Affine(10, 0, 500000, 0, -10, 4700640), 64, 64)


def _fetch(tmp_path, fake, *, cache=None, retry=None, is_cancelled=None, budget=download.REQUEST_LIMIT_BYTES):
    from landslide_sar_plugin.core.staging import Progress

    img = graph.for_download(ee.Image.constant(-12).rename("VH_pre"))
    f = download.Fetcher(fake, cache or download.TileCache(tmp_path / "cache"), budget=budget,
                         retry=retry or download.RetryPolicy(sleep=lambda s: None))
    out = tmp_path / "out" / "x.tif"
    out.parent.mkdir(exist_ok=True)
    stats = f.fetch(img, ["VH_pre"], _grid64(), out, Progress(None, is_cancelled), label="test")
    return out, stats


def test_split_on_size_error_then_cache(offline_ee, tmp_path):
    def fail(req):
        d = req["grid"]["dimensions"]
        if d["width"] * d["height"] > 1000:
            return RuntimeError(f"Total request size ({d['width'] * d['height'] * 5} bytes) must be less than "
                                "or equal to 50331648 bytes.")
        return None

    fake = FakeTransport(fail=fail)
    out, stats = _fetch(tmp_path, fake)
    # 64x64 refused -> 4 x 32x32 (1024 px) refused -> 16 x 16x16 served: 1 + 4 + 16 requests
    assert stats.requests == 21 and stats.splits == 5 and stats.tiles == 1
    assert sorted({(r["grid"]["dimensions"]["width"]) for r in fake.pixel_calls}) == [16, 32, 64]
    with rasterio.open(out) as src:
        assert src.read(1).shape == (64, 64) and np.all(src.read(1) == -12.0)
        assert src.profile["driver"] == "GTiff" and src.overviews(1) is not None
    fake2 = FakeTransport(fail=fail)
    out2, stats2 = _fetch(tmp_path, fake2)
    assert fake2.n_calls == 0 and stats2.cache_hits == 16


def test_retry_with_backoff(offline_ee, tmp_path):
    slept = []
    errors = [RuntimeError("HttpError 429: Too many concurrent aggregations"),
              RuntimeError("Computation timed out."), RuntimeError("<HttpError 503 Service Unavailable>")]
    fake = FakeTransport(fail=lambda req: errors.pop(0) if errors else None)
    out, stats = _fetch(tmp_path, fake, retry=download.RetryPolicy(base_s=2, max_s=5, sleep=slept.append))
    assert slept == [2, 4, 5] and stats.retries == 3 and stats.requests == 4 and out.is_file()
    # a permanent error is not retried
    slept.clear()
    fake = FakeTransport(fail=lambda req: RuntimeError("Image.select: Band 'VH_pre' not found"))
    with pytest.raises(auth.EarthEngineError, match="not found") as err:
        _fetch(tmp_path / "b", fake, retry=download.RetryPolicy(sleep=slept.append))
    assert slept == [] and len(fake.pixel_calls) == 1 and err.value.kind == "download"
    # retries run out
    fake = FakeTransport(fail=lambda req: RuntimeError("Quota exceeded (429)"))
    with pytest.raises(auth.EarthEngineError, match="Quota"):
        _fetch(tmp_path / "c", fake, retry=download.RetryPolicy(max_retries=3, sleep=slept.append))
    assert len(fake.pixel_calls) == 4 and slept == [2, 4, 8]
    assert not download.is_transient(RuntimeError("Total request size (50033700 bytes) must be less than"))


def test_cancel_mid_download_leaves_no_file(offline_ee, tmp_path):
    fake = FakeTransport()
    with pytest.raises(Cancelled):
        _fetch(tmp_path, fake, is_cancelled=lambda: len(fake.pixel_calls) >= 2, budget=64 * 16 * 5)
    assert len(fake.pixel_calls) == 2
    assert list((tmp_path / "out").iterdir()) == []


def test_geotiff_bytes_answer_is_decoded(tmp_path):
    from rasterio.io import MemoryFile

    data = np.arange(12, dtype="float32").reshape(1, 3, 4)
    data[0, 0, 0] = download.NODATA_SENTINEL
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=4, height=3, count=1, dtype="float32") as dst:
            dst.write(data)
        raw = mem.read()
    arr = download.decode_pixels(raw, ["b"], 4, 3)
    assert np.isnan(arr[0, 0, 0]) and arr[0, 2, 3] == 11
    with pytest.raises(auth.EarthEngineError, match="shape"):
        download.decode_pixels(raw, ["b"], 5, 3)


# --------------------------------------------------------------------------- whole runs


def test_download_mode_runs_local_engine_then_cache(offline_ee, tmp_path):
    fake = FakeTransport()
    p = params(polarisation="VH")
    res = eerun.run_earthengine_detection(None, None, tmp_path / "run", p, project="my-project", mode="download",
                                          transport=fake, cache_dir=tmp_path / "cache")
    out = tmp_path / "run"
    assert res.n_candidates == 1
    for name in ("a_ratio.tif", "candidates.gpkg", "counts.tif", "mask.tif", "heatmap.tif", "run.json"):
        assert (out / name).is_file(), name
    scenes = json.loads((out / "ee_inputs" / "scenes" / "scenes.json").read_text())["scenes"]
    assert sorted(s["file"] for s in scenes) == ["ASC_R39_post.tif", "ASC_R39_pre.tif", "DES_R46_post.tif",
                                                 "DES_R46_pre.tif"]
    with rasterio.open(out / "a_ratio.tif") as src:
        r = src.read(1)
    assert np.nanmax(r) == pytest.approx(6.0, abs=1e-4) and r[28, 28] == pytest.approx(6.0)  # inside the scar
    assert r[5, 5] == pytest.approx(0.0)
    with rasterio.open(out / "counts.tif") as src:
        assert list(src.descriptions) == ["ascending_pre", "ascending_post", "descending_pre", "descending_post"]
        assert [int(src.read(b)[10, 10]) for b in (1, 2, 3, 4)] == [3, 1, 3, 1]
    info = json.loads((out / "run.json").read_text())["earthengine"]
    assert info["collection"] == "COPERNICUS/S1_GRD" and info["mode"] == "download"
    assert info["filters"]["instrumentMode"] == "IW"
    assert {(s["orbit_pass"], s["role"]): s["image_ids"] for s in info["stacks"]}[("ASCENDING", "pre")] == \
        [r[0] for r in ROWS[:3]]
    assert set(info["expressions"]) == {"ASC_R39_pre", "ASC_R39_post", "ASC_R39_counts", "DES_R46_pre",
                                        "DES_R46_post", "DES_R46_counts", "dem"}
    n_first = fake.n_calls
    assert n_first > 0
    fake2 = FakeTransport()
    res2 = eerun.run_earthengine_detection(None, None, tmp_path / "run2", p, project="my-project",
                                           mode="download", transport=fake2, cache_dir=tmp_path / "cache")
    assert fake2.n_calls == 0 and res2.n_candidates == 1


def test_server_mode_thresholds_locally(offline_ee, tmp_path):
    fake = FakeTransport()
    aoi_poly = tmp_path / "aoi.geojson"
    aoi_poly.write_text(json.dumps({"type": "Polygon", "crs": None, "coordinates": [[
        [500000, 4700000], [500640, 4700000], [500640, 4700640], [500000, 4700640], [500000, 4700000]]]}))
    progress = []
    res = eerun.run_earthengine_detection(AOI, "2018-09-05T18:08Z", tmp_path / "run", params(), project="p",
                                          mode="server", transport=fake, cache_dir=tmp_path / "cache",
                                          progress=lambda f, m: progress.append(f))
    out = tmp_path / "run"
    assert res.n_candidates == 1
    for name in ("a_ratio.tif", "a_ratio_ascending.tif", "a_ratio_descending.tif", "counts.tif", "mask.tif",
                 "exceedance.tif", "heatmap.tif", "candidates.gpkg", "candidates.json", "run.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob(".partial*"))
    assert [set(r["bandIds"]) for r in fake.pixel_calls][0] >= {"a_ratio", "mask_code"}
    info = json.loads((out / "run.json").read_text())
    assert info["earthengine"]["mode"] == "server" and info["n_candidates"] == 1
    assert "server_products" in info["earthengine"]["expressions"]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    with pytest.raises(DetectionError, match="ee-mode"):
        eerun.run_earthengine_detection(AOI, None, tmp_path / "x", params(), project="p", mode="cloud",
                                        transport=fake)


# --------------------------------------------------------------------------- auth


SECRET = "1//0gSECRETrefreshTOKEN-abcdefghijklmnop"


class FakeEE:
    def __init__(self, error=None):
        self.error = error
        self.init_calls = []
        self.auth_calls = []

    def Initialize(self, *args, **kw):  # noqa: N802
        self.init_calls.append((args, kw))
        if self.error:
            raise self.error

    def Authenticate(self, **kw):  # noqa: N802
        self.auth_calls.append(kw)

    def ServiceAccountCredentials(self, email, key_file):  # noqa: N802
        return ("sa", email)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    return tmp_path


def _write_creds(home):
    p = home / ".config" / "earthengine" / "credentials"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"refresh_token": SECRET, "client_secret": "topsecretclientsecret123"}))
    return p


def test_missing_package_names_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ee", None)
    with pytest.raises(auth.EarthEngineError) as err:
        auth.import_ee()
    assert err.value.kind == "missing_package" and "python -m pip install earthengine-api" in str(err.value)


def test_no_credentials(home):
    fake = FakeEE()
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize("proj", ee_module=fake)
    assert err.value.kind == "no_credentials" and err.value.needs_sign_in and "Sign in" in str(err.value)
    assert fake.init_calls == []


def test_expired_credentials_never_leak_the_token(home, caplog):
    _write_creds(home)
    fake = FakeEE(RuntimeError(f"RefreshError: ('invalid_grant: Token has been expired or revoked.', "
                               f"{{'refresh_token': '{SECRET}', 'access_token': 'ya29.a0AfH6SMBxyz'}})"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize("proj", ee_module=fake)
    e = err.value
    assert e.kind == "expired" and e.needs_sign_in and "Sign in" in str(e)
    assert e.__context__ is None and e.__cause__ is None
    for text in (str(e), repr(e), caplog.text):
        assert SECRET not in text and "ya29" not in text and "topsecretclientsecret123" not in text
    assert fake.init_calls == [((), {"project": "proj"})]
    info = auth.find_credentials()
    assert info.kind == "user" and SECRET not in json.dumps(info.to_dict())


def test_other_auth_failures(home, tmp_path):
    _write_creds(home)
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize(None, ee_module=FakeEE())
    assert err.value.kind == "no_project" and "--project" in str(err.value)
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize("p", ee_module=FakeEE(RuntimeError(
            "Earth Engine API has not been used in project 12345 before or it is disabled")))
    assert err.value.kind == "project" and "register" in str(err.value).lower()
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize("p", ee_module=FakeEE(OSError("Unable to find the server at oauth2.googleapis.com")))
    assert err.value.kind == "network"
    bad = tmp_path / "key.json"
    bad.write_text("{}")
    with pytest.raises(auth.EarthEngineError) as err:
        auth.initialize("p", service_account_key=bad, ee_module=FakeEE())
    assert err.value.kind == "service_account"
    good = tmp_path / "sa.json"
    good.write_text(json.dumps({"client_email": "x@p.iam.gserviceaccount.com",
                                "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"}))
    fake = FakeEE()
    assert auth.initialize("p", service_account_key=good, ee_module=fake).kind == "service_account"
    assert fake.init_calls == [(("sa", "x@p.iam.gserviceaccount.com"),), {"project": "p"}][0:1] or \
        fake.init_calls[0] == ((("sa", "x@p.iam.gserviceaccount.com"),), {"project": "p"})
    fake = FakeEE()
    assert auth.authenticate_interactive(ee_module=fake) == home / ".config" / "earthengine" / "credentials"
    assert fake.auth_calls == [{"auth_mode": "localhost", "force": True}]


def test_redact():
    text = ('{"private_key": "-----BEGIN PRIVATE KEY-----\\nAAA\\n-----END PRIVATE KEY-----", '
            f'"refresh_token": "{SECRET}"}} ya29.abc.def https://x?access_token=zzz')
    out = auth.redact(text)
    assert SECRET not in out and "ya29" not in out and "AAA" not in out and "zzz" not in out


def test_package_import_does_not_import_ee():
    import subprocess

    code = ("import sys; import landslide_sar_plugin.core.earthengine as m; "
            "assert 'ee' not in sys.modules, 'ee imported eagerly'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- the real service


@pytest.mark.skipif(not (os.environ.get("EE_PROJECT") and auth.find_credentials().kind != "none"),
                    reason="needs Earth Engine credentials and EE_PROJECT=<cloud project id> (not available "
                           "offline); set both to run the listing against the real service")
def test_real_service_listing(tmp_path):  # pragma: no cover - network
    auth.initialize(os.environ["EE_PROJECT"])
    listing = eerun.list_scenes(params(), transport=download.EarthEngineTransport(),
                                cache=download.TileCache(tmp_path))
    assert listing.selection.tracks()
