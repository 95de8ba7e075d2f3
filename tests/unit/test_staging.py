"""Publication of a run as a whole: manifest, journal, recovery, leftovers, the folder lock, strict JSON."""

from __future__ import annotations

import json
import logging
import os

import pytest

from landslide_sar_plugin.core import staging
from landslide_sar_plugin.core.staging import DetectionError


def stage_files(out, names: dict[str, str]):
    st = staging.new_staging(out)
    files = {}
    for key, name in names.items():
        (st / name).write_text(f"{key} of this run", encoding="utf-8")
        files[key] = st / name
    return st, files


def visible(folder):
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_run_replaces_the_previous_one_as_a_whole_and_never_keeps_stale_files(tmp_path):
    out = tmp_path / "out"
    st, files = stage_files(out, {"a": "a.tif", "evaluation": "evaluation.json", "run": "run.json"})
    staging.publish(st, out, files)
    (out / "notes.txt").write_text("the user's notes")  # not ours: never touched
    st, files = stage_files(out, {"a": "a.tif", "run": "run.json"})
    final = staging.publish(st, out, files)
    assert visible(out) == ["a.tif", "notes.txt", "run.json"]  # the stale evaluation.json went with its run
    assert final == {"a": out / "a.tif", "run": out / "run.json"}
    assert set(staging.read_manifest(out)["entries"]) == {"a.tif", "run.json"}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [staging.MANIFEST_NAME]


def test_an_addition_keeps_the_run_and_joins_it(tmp_path):
    out = tmp_path / "out"
    st, files = stage_files(out, {"a": "a.tif", "run": "run.json"})
    staging.publish(st, out, files)
    st, files = stage_files(out, {"update": "update_candidates.gpkg"})
    staging.publish(st, out, files, replace=False)
    assert set(staging.read_manifest(out)["entries"]) == {"a.tif", "run.json", "update_candidates.gpkg"}


def test_a_users_file_of_our_name_is_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "candidates.gpkg").write_text("mine")
    st, files = stage_files(out, {"candidates": "candidates.gpkg"})
    with pytest.raises(DetectionError, match="was not written by a run of this tool"):
        staging.publish(st, out, files)
    assert (out / "candidates.gpkg").read_text() == "mine"
    assert visible(out) == ["candidates.gpkg"] and not list(out.glob(".partial-*"))


def test_a_folder_of_an_older_version_is_adopted_from_its_run_json(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"software": "landslide_sar_plugin", "outputs": {"a": "a.tif"}}))
    (out / "a.tif").write_text("old")
    (out / "evaluation.json").write_text("{}")
    st, files = stage_files(out, {"a": "a.tif", "run": "run.json"})
    staging.publish(st, out, files)
    assert visible(out) == ["a.tif", "run.json"] and (out / "a.tif").read_text() == "a of this run"


def test_a_failure_during_the_swap_restores_the_previous_run(tmp_path, monkeypatch):
    out = tmp_path / "out"
    st, files = stage_files(out, {"a": "a.tif", "b": "b.tif", "run": "run.json"})
    staging.publish(st, out, files)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    st, files = stage_files(out, {"a": "a.tif", "c": "c.tif", "run": "run.json"})
    real, calls = os.replace, []

    def failing(a, b):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, "No space left on device")
        real(a, b)

    monkeypatch.setattr(staging.os, "replace", failing)
    with pytest.raises(OSError):
        staging.publish(st, out, files)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_recovery_rolls_back_a_publication_a_kill_interrupted(tmp_path, caplog):
    out = tmp_path / "out"
    st, files = stage_files(out, {"a": "a.tif", "run": "run.json"})
    staging.publish(st, out, files)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # What a kill -9 after the first two renames leaves: journal, old entries half moved aside, one new file in.
    st, files = stage_files(out, {"a": "a.tif", "n": "new.tif", "run": "run.json"})
    (st / staging.REPLACED_DIR).mkdir()
    (out / staging.JOURNAL_NAME).write_text(json.dumps({"staging": st.name, "run_id": "x", "old": ["a.tif", "run.json"],
                                                        "new": ["a.tif", "new.tif", "run.json"]}))
    os.replace(out / staging.MANIFEST_NAME, st / staging.REPLACED_DIR / staging.MANIFEST_NAME)
    os.replace(out / "a.tif", st / staging.REPLACED_DIR / "a.tif")
    os.replace(st / "new.tif", out / "new.tif")
    staging._release(st)
    assert staging.read_manifest(out) is None  # readers do not trust a folder mid-publication
    with caplog.at_level(logging.WARNING):
        st2 = staging.new_staging(out)
    staging.discard(st2)
    assert "killed while its files were being published" in caplog.text
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_leftovers_of_dead_runs_are_removed_with_one_line_and_nothing_else(tmp_path, caplog):
    out = tmp_path / "out"
    out.mkdir()
    dead = out / ".partial-run-0123abcd"
    dead.mkdir()
    (dead / "a_ratio.stage.tif").write_bytes(b"x" * 2_000_000)
    (out / ".run.json.partial-89abcdef").write_text("{")
    for name in (".partial-run-mine", ".hidden_user_file", "partial-run-0123abcd", "my.partial-1234abcd.tif"):
        (out / name).write_text("the user's")
    with caplog.at_level(logging.WARNING):
        staging.discard(staging.new_staging(out))
    assert "removed 2 leftover(s) of earlier runs that did not finish" in caplog.text and "(2.0 MB)" in caplog.text
    kept = [".hidden_user_file", ".partial-run-mine", "my.partial-1234abcd.tif", "partial-run-0123abcd"]
    assert sorted(p.name for p in out.iterdir()) == kept


def test_a_second_run_into_a_busy_folder_is_refused_and_a_failed_run_removes_the_folder_it_made(tmp_path):
    out = tmp_path / "new_out"
    st = staging.new_staging(out)
    with pytest.raises(DetectionError, match="another run is writing into"):
        staging.new_staging(out)
    staging.discard(st)
    assert not out.exists()
    st = staging.new_staging(out)  # the lock died with the first: the folder is free again
    staging.discard(st)


def test_run_json_stays_strict_json_with_nan_and_infinity(tmp_path):
    import numpy as np

    staging.write_json(tmp_path / "run.json", {"threshold_db": float("nan"), "p": [np.float32("inf"), 1.5],
                                               "nested": {"x": -float("inf")}})

    def refuse(name):
        raise AssertionError(f"{name} in run.json")

    data = json.loads((tmp_path / "run.json").read_text(), parse_constant=refuse)
    assert data == {"threshold_db": None, "p": [None, 1.5], "nested": {"x": None}}


def test_run_folders_published_one_by_one_are_replaced_by_a_run_of_both(tmp_path):
    # The dock publishes a_ratio/ and model/ as runs of their own and adds agreement.tif to the parent.
    out = tmp_path / "out"
    for sub in ("a_ratio", "model"):
        st, files = stage_files(out / sub, {"run": "run.json"})
        staging.publish(st, out / sub, files)
    st, files = stage_files(out, {"agreement": "agreement.tif"})
    staging.publish(st, out, files, replace=False)

    def build(st):
        for sub in ("a_ratio", "model"):
            inner, files = stage_files(st / sub, {"run": "run.json", "x": "x.tif"})
            staging.publish(inner, st / sub, files)
        (st / "agreement.tif").write_text("new")
        return {"a_ratio": st / "a_ratio", "model": st / "model", "agreement": st / "agreement.tif"}

    staging.publish_as_one(out, build)
    assert visible(out) == ["a_ratio", "agreement.tif", "model"] and visible(out / "model") == ["run.json", "x.tif"]


# ---------------------------------------------------------------- staged rasters: raw twin, COGs in background


def _staged(tmp_path, name="score", **kw):
    import numpy as np
    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.windows import Window

    from landslide_sar_plugin.core.grid import Grid

    grid = Grid(CRS.from_epsg(32633), Affine(10, 0, 400000, 0, -10, 5000000), 700, 600)
    data = np.random.default_rng(len(name)).normal(size=(600, 700)).astype(np.float32)
    raster = staging.StagedRaster(tmp_path, name, grid, count=1, dtype="float32", nodata=float("nan"), **kw)
    raster.write(Window(0, 0, 700, 600), data)
    raster.close()
    return raster, data


def test_the_raw_twin_holds_the_same_values_uncompressed_until_dropped(tmp_path):
    import numpy as np
    import rasterio

    raster, data = _staged(tmp_path, raw_copy=True, predictor=3)
    assert raster.raw_path != raster.path
    with rasterio.open(raster.raw_path) as raw, rasterio.open(raster.path) as staged:
        assert raw.compression is None and staged.compression is not None
        np.testing.assert_array_equal(raw.read(1), data)
        np.testing.assert_array_equal(staged.read(1), data)
    cog = raster.to_cog()
    assert raster.raw_path.exists()  # still there for the passes that read it
    raster.drop_raw()
    assert not (tmp_path / "score.raw.tif").exists() and raster.raw_path == raster.path
    with rasterio.open(cog) as src:
        np.testing.assert_array_equal(src.read(1), data)
    (tmp_path / "other").mkdir()
    plain, _ = _staged(tmp_path / "other", name="plain")
    assert plain.raw_path == plain.path  # no twin asked for: the staged file itself


def test_cogs_are_assembled_in_the_background_and_an_error_stops_them(tmp_path, monkeypatch):
    import threading

    import numpy as np
    import rasterio

    rasters = {k: _staged(tmp_path, name=k)[0] for k in ("a", "bb", "ccc")}
    with staging.cogs_in_background(rasters, tmp_path, ["a", "ccc"]) as done:
        cogs = done()
    assert {k: p.name for k, p in cogs.items()} == {"a": "a.tif", "ccc": "ccc.tif"}
    with rasterio.open(cogs["ccc"]) as src:
        assert np.isfinite(src.read(1)).all()
    assert rasters["bb"].path.exists() and not rasters["a"].path.exists()  # only the keys asked for

    more = {k: _staged(tmp_path, name=k)[0] for k in ("d", "ee")}
    started, release = threading.Event(), threading.Event()
    original = staging.StagedRaster.to_cog

    def slow_to_cog(self, final=None):
        started.set()
        assert release.wait(10), "the stop flag was never set"
        return original(self, final)

    class StopFlag(threading.Event):  # the raster being written finishes only once the stop is asked for
        def set(self):
            super().set()
            release.set()

    monkeypatch.setattr(staging.StagedRaster, "to_cog", slow_to_cog)
    monkeypatch.setattr(staging.threading, "Event", StopFlag)
    with pytest.raises(ValueError, match="the next stage failed"):
        with staging.cogs_in_background(more, tmp_path, ["d", "ee"]):
            assert started.wait(10)
            raise ValueError("the next stage failed")
    # Left only once the thread had finished: it stopped after the raster it was writing.
    assert (tmp_path / "d.tif").exists() and not (tmp_path / "ee.tif").exists()


def test_gdal_block_cache_is_given_to_rasterio_in_bytes(tmp_path):
    """rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64 in bytes: 256 meant a 256-byte cache."""
    import rasterio.env

    seen = {}

    def body(st):
        seen.update(rasterio.env.getenv())

        class Result:
            files, run_info, timings_s = {}, {}, {}
        return Result()

    staging.run_staged(tmp_path / "out", body, {}, 0.0)
    assert seen["GDAL_CACHEMAX"] == staging.GDAL_CACHE_MB * 1024 * 1024 >= 16 * 1024 * 1024
