"""GeoPackages any GIS tool can share: GDAL's validator, R-tree index, files GDAL wrote, locks, races, crashes."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from landslide_sar_plugin.core import gpkg, inventory
from landslide_sar_plugin.core.gpkg import Feature
from landslide_sar_plugin.core.inventory import InventoryError, export_reviewed, inventory_counts, read_inventory
from landslide_sar_plugin.core.threshold import CANDIDATE_FIELDS, candidate_uuid

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import validate_gpkg  # noqa: E402  (GDAL's own validator, vendored in tests/tools)

CRS = "EPSG:32654"
X0, Y0 = 559000.0, 4748000.0
EVENT = "event_20180905T1807"
SAMPLE_TRUTH = Path(__file__).resolve().parents[2] / "landslide_sar_plugin/sample_data/truth/landslides.gpkg"


def square(i: int, size: float = 50.0) -> dict:
    x, y = X0 + i * 200.0, Y0
    return {"type": "Polygon", "coordinates": [[(x, y), (x + size, y), (x + size, y + size), (x, y + size), (x, y)]]}


def candidates_file(path: Path, n: int, status: str = "accepted", start: int = 0) -> Path:
    feats = []
    for i in range(start, start + n):
        geom = square(i)
        feats.append(Feature(geom, {"id": i, "area_m2": 2500.0, "mean_score": 2.0, "max_score": 3.0,
                                    "method": "a_ratio", "threshold": 1.25, "event_id": EVENT, "status": status,
                                    "uuid": candidate_uuid(EVENT, "a_ratio", 1.25, geom)}))
    return gpkg.write_features(path, "candidates", feats, crs=CRS, fields=CANDIDATE_FIELDS)


def validate(path: Path) -> list:
    return validate_gpkg.check(str(path), abort_at_first_error=False, extra_checks=True, warning_as_error=True)


def rtree_rows(path: Path, table: str, geom: str = "geom") -> int:
    with sqlite3.connect(path) as conn:
        (n,) = conn.execute(f'SELECT COUNT(*) FROM "rtree_{table}_{geom}"').fetchone()
        ext = conn.execute("SELECT extension_name FROM gpkg_extensions WHERE table_name = ?", (table,)).fetchall()
    assert ("gpkg_rtree_index",) in ext
    return n


# ----------------------------------------------------------------------------- what we write


def test_candidates_inventory_and_sample_pass_gdal_validator_with_an_rtree(tmp_path):
    cand = candidates_file(tmp_path / "run" / "candidates.gpkg", 4)
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(cand, inv, reviewer="tester")
    for path, table, n in ((cand, "candidates", 4), (inv, "landslides", 4), (SAMPLE_TRUTH, "landslides", 225)):
        assert validate(path) == [], path
        assert rtree_rows(path, table) == n
    with sqlite3.connect(inv) as conn:
        (last_change,) = conn.execute("SELECT last_change FROM gpkg_contents").fetchone()
    assert last_change.endswith("Z") and "." in last_change  # Requirement 15: milliseconds


def test_the_rtree_follows_updates_and_answers_window_queries(tmp_path):
    cand = candidates_file(tmp_path / "run" / "candidates.gpkg", 3)
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(cand, inv, reviewer="a")
    with sqlite3.connect(cand) as conn:  # the analyst moves polygon 0 far east (as QGIS would commit it)
        gpkg.register_functions(conn)
        blob = gpkg.encode_geometry(square(50), 32654)
        conn.execute("UPDATE candidates SET geom = ?, status = 'edited' WHERE id = 0", (blob,))
    export_reviewed(cand, inv, reviewer="a")
    with sqlite3.connect(inv) as conn:
        hits = conn.execute('SELECT id FROM "rtree_landslides_geom" WHERE minx >= ?', (X0 + 50 * 200.0 - 1,))
        moved = [r[0] for r in hits]
        (fid,) = conn.execute("SELECT fid FROM landslides WHERE status = 'edited'").fetchone()
    assert moved == [fid]
    assert validate(inv) == []


@pytest.mark.parametrize("blob_kind", ["no envelope", "big endian"])
def test_sql_functions_read_any_blob_gdal_writes(blob_kind):
    ring = [(1.0, 2.0), (5.0, 2.0), (5.0, 7.0), (1.0, 2.0)]
    if blob_kind == "no envelope":
        wkb = struct.pack("<BII", 1, 3, 1) + struct.pack("<I", 4) + b"".join(struct.pack("<dd", *p) for p in ring)
        blob = b"GP" + struct.pack("<BBi", 0, 0b0000_0001, 4326) + wkb
    else:
        wkb = struct.pack(">BII", 0, 3, 1) + struct.pack(">I", 4) + b"".join(struct.pack(">dd", *p) for p in ring)
        blob = b"GP" + struct.pack(">BBi", 0, 0b0000_0010, 4326) + struct.pack(">dddd", 1, 5, 2, 7) + wkb
    conn = sqlite3.connect(":memory:")
    gpkg.register_functions(conn)
    row = conn.execute("SELECT ST_IsEmpty(?), ST_MinX(?), ST_MaxX(?), ST_MinY(?), ST_MaxY(?), ST_GeometryType(?), "
                       "ST_SRID(?), ST_MinX(x'00')", (blob,) * 7).fetchone()
    assert row == (0, 1.0, 5.0, 2.0, 7.0, "POLYGON", 4326, None)


# ----------------------------------------------------------------------------- what GDAL writes

ogr2ogr = shutil.which("ogr2ogr")


@pytest.mark.skipif(ogr2ogr is None, reason="GDAL's ogr2ogr is not installed (Debian: gdal-bin, a QGIS dependency)")
@pytest.mark.parametrize("lco", [[], ["-lco", "GEOMETRY_NAME=geometry", "-lco", "FID=ogc_fid"]])
def test_export_into_an_inventory_gdal_wrote_keeps_its_spatial_index(tmp_path, lco):
    ours = tmp_path / "ours.gpkg"
    export_reviewed(candidates_file(tmp_path / "r1" / "candidates.gpkg", 2), ours, reviewer="a")
    theirs = tmp_path / "gdal_inventory.gpkg"
    subprocess.run([ogr2ogr, "-f", "GPKG", *lco, str(theirs), str(ours), "landslides"], check=True,
                   capture_output=True)
    with sqlite3.connect(theirs) as conn:  # really GDAL's file: its own triggers call ST_IsEmpty
        triggers = " ".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'"))
    assert "ST_IsEmpty" in triggers and "gpkg_ogr_contents" in triggers
    geom = "geometry" if lco else "geom"
    summary = export_reviewed(candidates_file(tmp_path / "r2" / "candidates.gpkg", 3, start=10), theirs,
                              reviewer="b")
    assert summary.added == 3 and inventory_counts(theirs)["total"] == 5
    assert rtree_rows(theirs, "landslides", geom) == 5
    assert validate(theirs) == []
    out = subprocess.run(["ogrinfo", "-ro", "-so", "-al", str(theirs)], capture_output=True, text=True, check=True)
    assert "Feature Count: 5" in out.stdout
    again = export_reviewed(tmp_path / "r2" / "candidates.gpkg", theirs, reviewer="b")
    assert (again.added, again.unchanged) == (0, 3)


# ----------------------------------------------------------------------------- locks, races, crashes


def test_a_lock_held_by_another_program_is_waited_for(tmp_path):
    cand = candidates_file(tmp_path / "run" / "candidates.gpkg", 2)
    inv = tmp_path / "inventory.gpkg"
    inventory.create_inventory(inv, CRS)
    holder = sqlite3.connect(inv, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(1.5, lambda: holder.execute("ROLLBACK")).start()
    t0 = time.monotonic()
    summary = export_reviewed(cand, inv, reviewer="a")
    assert summary.added == 2 and time.monotonic() - t0 >= 1.4  # waited instead of failing at once
    holder.close()


def test_a_lock_held_past_the_timeout_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(gpkg, "BUSY_TIMEOUT_S", 0.5)
    cand = candidates_file(tmp_path / "run" / "candidates.gpkg", 2)
    inv = tmp_path / "inventory.gpkg"
    inventory.create_inventory(inv, CRS)
    before = inv.read_bytes()
    holder = sqlite3.connect(inv, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(InventoryError, match=r"is locked by another program .*waited 0 s"):
            export_reviewed(cand, inv, reviewer="a")
    finally:
        holder.close()
    assert inv.read_bytes() == before


def _export_worker(args):
    cand, inv = args
    return export_reviewed(cand, inv, reviewer="p").added


def test_six_processes_creating_one_inventory_all_succeed(tmp_path):
    inv = tmp_path / "new_inventory.gpkg"
    jobs = [(str(candidates_file(tmp_path / f"r{k}" / "candidates.gpkg", 3, start=10 * k)), str(inv))
            for k in range(6)]
    with multiprocessing.get_context("spawn").Pool(6) as pool:
        added = pool.map(_export_worker, jobs)
    assert added == [3] * 6
    assert inventory_counts(inv) == {"accepted": 18, "total": 18}
    assert validate(inv) == [] and not list(tmp_path.glob(".*partial*"))


KILLER = """
import sys, os, time
from landslide_sar_plugin.core import gpkg, inventory
real = gpkg.insert_features
def slow(conn, layer, features, **kw):
    n = real(conn, layer, features, **kw)
    print("inside", flush=True)
    time.sleep(60)  # killed here, with the rows written into the journal-protected file
    return n
gpkg.insert_features = slow
inventory.export_reviewed(sys.argv[1], sys.argv[2], reviewer="killed")
"""


def test_kill_9_during_an_export_leaves_a_hot_journal_that_the_next_open_rolls_back(tmp_path):
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(candidates_file(tmp_path / "r0" / "candidates.gpkg", 4), inv, reviewer="a")
    big = candidates_file(tmp_path / "r1" / "candidates.gpkg", 300, start=100)
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(big), str(inv)], cwd=root, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "inside"
    proc.kill()
    proc.wait()
    assert inv.with_name(inv.name + "-journal").exists()  # the hot journal the audit found
    assert inventory_counts(inv) == {"accepted": 4, "total": 4}  # read-only use recovers it
    feats, _ = read_inventory(inv)
    assert len(feats) == 4
    with sqlite3.connect(f"file:{inv}?mode=ro", uri=True) as plain:  # the journal is no longer hot for anyone
        assert plain.execute("SELECT COUNT(*) FROM landslides").fetchone() == (4,)
    assert export_reviewed(big, inv, reviewer="b").added == 300 and inventory_counts(inv)["total"] == 304
    assert validate(inv) == []


def test_a_run_record_with_nan_is_still_read(tmp_path):
    # run.json written by older versions could hold NaN (not JSON); the export still reads it.
    cand = candidates_file(tmp_path / "run" / "candidates.gpkg", 1)
    (cand.parent / "run.json").write_text('{"software": "landslide_sar_plugin", "threshold_db": NaN}')
    summary = export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="a")
    assert summary.added == 1
    assert json.loads(json.dumps(read_inventory(tmp_path / "inv.gpkg")[0][0].properties["threshold"])) == 1.25
