"""Training inventory: create, export reviewed candidates (one transaction, idempotent), read back."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import struct
import threading

import pytest

from landslide_sar_plugin.core import gpkg, inventory
from landslide_sar_plugin.core.gpkg import Feature
from landslide_sar_plugin.core.inventory import (
    InventoryError,
    create_inventory,
    export_reviewed,
    inventory_counts,
    read_inventory,
)
from landslide_sar_plugin.core.threshold import CANDIDATE_FIELDS, candidate_uuid

CRS = "EPSG:32654"
X0, Y0 = 559000.0, 4748000.0
EVENT = "event_20180905T1807"
T1 = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
T2 = dt.datetime(2024, 1, 3, 3, 4, 5, tzinfo=dt.timezone.utc)


def square(i: int, size: float = 50.0) -> dict:
    x, y = X0 + i * 200.0, Y0
    return {"type": "Polygon", "coordinates": [[(x, y), (x + size, y), (x + size, y + size), (x, y + size), (x, y)]]}


def candidate(i: int, status: str, **extra) -> Feature:
    geom = square(i)
    props = {"id": i, "area_m2": 2500.0, "mean_score": 2.0 + i, "max_score": 3.0 + i, "method": "a_ratio",
             "threshold": 1.25, "event_id": EVENT, "status": status,
             "uuid": candidate_uuid(EVENT, "a_ratio", 1.25, geom)}
    props.update(extra)
    return Feature(geom, props)


RUN_JSON = {
    "software": "landslide_sar_plugin", "method": "a_ratio", "synthetic_input": True, "event_id": EVENT,
    "inputs": {"scenes": [{"scene_id": s} for s in ("ASC_1", "ASC_2", "DES_1", "DES_2", "UNUSED")]},
    "stacks": {"pre": [{"scenes": ["ASC_1"]}, {"scenes": ["DES_1"]}],
               "post": [{"scenes": ["ASC_2"]}, {"scenes": ["DES_2"]}]},
    "threshold_db": 1.25,
}


@pytest.fixture
def run_dir(tmp_path):
    """A run folder: candidates.gpkg (proposed, accepted, edited, rejected) and run.json."""
    d = tmp_path / "run"
    feats = [candidate(0, "proposed"), candidate(1, "accepted"), candidate(2, "edited"), candidate(3, "rejected")]
    gpkg.write_features(d / "candidates.gpkg", "candidates", feats, crs=CRS, fields=CANDIDATE_FIELDS)
    (d / "run.json").write_text(json.dumps(RUN_JSON))
    return d


def sql_connect(path) -> sqlite3.Connection:
    """What QGIS/GDAL do to a GeoPackage, done in SQL: a connection with the functions its R-tree triggers call."""
    conn = sqlite3.connect(path)
    gpkg.register_functions(conn)
    return conn


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(path) -> dict:
    feats, _ = read_inventory(path, statuses=None)
    return {f.properties["uuid"]: f for f in feats}


def test_create_inventory_has_the_schema_and_a_unique_uuid(tmp_path):
    path = create_inventory(tmp_path / "inv.gpkg", CRS)
    assert gpkg.list_layers(path) == ["landslides"]
    feats, crs = gpkg.read_features(path, "landslides")
    assert feats == [] and crs == CRS
    with sql_connect(path) as conn:
        cols = {r[1]: r[2] for r in conn.execute('PRAGMA table_info("landslides")')}
        for name, ftype in inventory.INVENTORY_FIELDS:
            assert cols[name] == ftype
        conn.execute("INSERT INTO landslides (uuid) VALUES ('a')")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO landslides (uuid) VALUES ('a')")
        conn.rollback()
    with pytest.raises(InventoryError, match="already holds"):
        create_inventory(path, CRS)
    assert create_inventory(path, CRS, exist_ok=True) == path
    assert inventory_counts(path) == {"total": 0}


def test_export_twice_adds_nothing_the_second_time(run_dir, tmp_path):
    inv = tmp_path / "inventory.gpkg"
    first = export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana", now=T1)
    assert (first.added, first.updated, first.unchanged, first.skipped) == (3, 0, 0, 1)
    assert first.created and first.by_status == {"accepted": 1, "edited": 1, "rejected": 1}
    assert "3 added" in first.message() and "rejected" in first.message()
    before = sha(inv)
    second = export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana", now=T2)
    assert (second.added, second.updated, second.unchanged, second.skipped) == (0, 0, 3, 1)
    assert not second.created
    assert inventory_counts(inv) == {"accepted": 1, "edited": 1, "rejected": 1, "total": 3}
    assert sha(inv) == before  # an export with nothing new leaves the file as it was
    for f in rows(inv).values():
        assert f.properties["updated_at"] == f.properties["created_at"] == "2024-01-02T03:04:05.000Z"


def test_edited_geometry_or_status_updates_the_row(run_dir, tmp_path):
    cand = run_dir / "candidates.gpkg"
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(cand, inv, reviewer="ana", now=T1)
    accepted = candidate(1, "accepted")
    uid = accepted.properties["uuid"]
    bigger = square(1, size=80.0)
    with sql_connect(cand) as conn:  # what a QGIS edit session commits
        conn.execute("UPDATE candidates SET geom = ?, status = 'edited' WHERE uuid = ?",
                     (gpkg.encode_geometry(bigger, 32654), uid))
    summary = export_reviewed(cand, inv, reviewer="ben", now=T2)
    assert (summary.added, summary.updated, summary.unchanged) == (0, 1, 2)
    row = rows(inv)[uid].properties
    assert row["status"] == "edited" and row["reviewer"] == "ben"
    assert row["area_m2"] == pytest.approx(6400.0)
    assert row["created_at"] == "2024-01-02T03:04:05.000Z" and row["updated_at"] == "2024-01-03T03:04:05.000Z"
    assert row["reviewed_at"] == "2024-01-03T03:04:05.000Z"
    assert inventory_counts(inv)["total"] == 3
    # The layer extent follows the edit.
    with sql_connect(inv) as conn:
        max_y = conn.execute("SELECT max_y FROM gpkg_contents WHERE table_name='landslides'").fetchone()[0]
    assert max_y == pytest.approx(Y0 + 80.0)


def test_rejected_polygons_are_stored_as_negatives_and_filtered_for_training(run_dir, tmp_path):
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana")
    positives, crs = read_inventory(inv)
    assert crs == CRS
    assert sorted(f.properties["status"] for f in positives) == ["accepted", "edited"]
    negatives, _ = read_inventory(inv, statuses=("rejected",))
    assert [f.properties["status"] for f in negatives] == ["rejected"]
    # Asking for accepted+edited only leaves the rejected polygon out of the inventory altogether.
    inv2 = tmp_path / "positives_only.gpkg"
    summary = export_reviewed(run_dir / "candidates.gpkg", inv2, reviewer="ana", statuses=("accepted", "edited"))
    assert (summary.added, summary.skipped) == (2, 2)
    with pytest.raises(InventoryError, match="unknown status"):
        export_reviewed(run_dir / "candidates.gpkg", inv2, reviewer="ana", statuses=("approved",))


def test_provenance_comes_from_the_feature_and_the_run_json(run_dir, tmp_path):
    run = dict(RUN_JSON, model={"sha256": "ab" * 32})
    (run_dir / "run.json").write_text(json.dumps(run))
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana", now="2024-05-06T07:08:09+02:00")
    row = rows(inv)[candidate(1, "accepted").properties["uuid"]].properties
    assert row["event_id"] == EVENT
    assert row["source"] == "threshold"
    assert row["method"] == "a_ratio" and row["threshold"] == 1.25
    assert row["model_sha256"] == "ab" * 32
    assert row["scene_ids"] == ["ASC_1", "ASC_2", "DES_1", "DES_2"]  # the stacks used, not the whole folder
    assert row["synthetic"] is True
    assert row["reviewer"] == "ana" and row["reviewed_at"] == "2024-05-06T05:08:09.000Z"
    assert len(row["run_id"]) == 16 and row["source_file"] == str((run_dir / "candidates.gpkg").resolve())
    assert row["mean_score"] == 3.0 and row["area_m2"] == pytest.approx(2500.0)


@pytest.mark.parametrize("threshold", [None, 1.25])
def test_a_hand_drawn_polygon_is_manual_with_no_threshold(run_dir, tmp_path, threshold):
    # What the dock gives a polygon drawn in QGIS: status accepted, method 'manual', a uuid from uuid() in braces;
    # QGIS may also copy the last threshold into the new feature.  Issue 13: it was exported as source=model.
    drawn = Feature(square(9), {"status": "accepted", "method": "manual", "threshold": threshold,
                                "uuid": "{0d9bb0a1-5d3c-4c0f-9a43-7b1e2f0f0c11}", "event_id": EVENT})
    with sql_connect(run_dir / "candidates.gpkg") as conn:
        conn.execute("BEGIN")
        gpkg.insert_features(conn, "candidates", [drawn])
        conn.execute("COMMIT")
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana")
    row = rows(inv)["0d9bb0a1-5d3c-4c0f-9a43-7b1e2f0f0c11"].properties
    assert (row["source"], row["method"], row["threshold"]) == ("manual", "manual", None)
    assert row["mean_score"] is None and row["model_sha256"] is None
    assert rows(inv)[candidate(1, "accepted").properties["uuid"]].properties["source"] == "threshold"


def test_explicit_run_json_and_no_run_json(tmp_path, run_dir):
    cand = tmp_path / "elsewhere" / "cands.gpkg"
    cand.parent.mkdir()
    cand.write_bytes((run_dir / "candidates.gpkg").read_bytes())
    inv = tmp_path / "a.gpkg"
    export_reviewed(cand, inv, reviewer="ana")  # no run.json next to it: fields from the features only
    row = rows(inv)[candidate(2, "edited").properties["uuid"]].properties
    assert row["scene_ids"] == [] and row["run_id"] is None and row["synthetic"] is None
    assert row["threshold"] == 1.25 and row["event_id"] == EVENT
    inv2 = tmp_path / "b.gpkg"
    export_reviewed(cand, inv2, reviewer="ana", run_json=run_dir / "run.json")
    assert rows(inv2)[candidate(2, "edited").properties["uuid"]].properties["scene_ids"][0] == "ASC_1"


def test_a_failure_midway_rolls_back_and_leaves_the_file_byte_identical(run_dir, tmp_path, monkeypatch):
    cand = run_dir / "candidates.gpkg"
    inv = tmp_path / "inventory.gpkg"
    export_reviewed(cand, inv, reviewer="ana", now=T1)
    before = sha(inv)
    # One existing polygon edited (an UPDATE runs first) and one new polygon (insert fails after it).
    with sql_connect(cand) as conn:
        conn.execute("UPDATE candidates SET status = 'rejected' WHERE id = 1")
        conn.execute("UPDATE candidates SET status = 'accepted' WHERE id = 0")

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(inventory.gpkg, "insert_features", boom)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export_reviewed(cand, inv, reviewer="ana", now=T2)
    assert sha(inv) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("inventory")) == ["inventory.gpkg"]
    monkeypatch.undo()
    summary = export_reviewed(cand, inv, reviewer="ana", now=T2)
    assert (summary.added, summary.updated, summary.unchanged) == (1, 1, 2)


def test_a_failed_export_into_a_new_inventory_leaves_no_file(run_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(inventory, "_write_rows", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(RuntimeError):
        export_reviewed(run_dir / "candidates.gpkg", tmp_path / "new.gpkg", reviewer="ana")
    assert list(tmp_path.glob("new.gpkg*")) == []


def test_concurrent_exports_keep_uuids_unique(run_dir, tmp_path):
    inv = create_inventory(tmp_path / "inventory.gpkg", CRS)
    barrier = threading.Barrier(4)
    results, errors = [], []

    def worker(name):
        try:
            barrier.wait()
            results.append(export_reviewed(run_dir / "candidates.gpkg", inv, reviewer=name))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"r{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sum(r.added for r in results) == 3
    assert sum(r.unchanged for r in results) == 9
    with sql_connect(inv) as conn:
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT uuid) FROM landslides").fetchone() == (3, 3)


def _qgis_style_blob(geometry: dict, srs_id: int) -> bytes:
    """A blob as another writer may store it: no envelope, big-endian, ISO WKB PolygonZ."""
    (ring,) = geometry["coordinates"]
    wkb = struct.pack(">BII", 0, 1003, 1) + struct.pack(">I", len(ring))
    wkb += b"".join(struct.pack(">ddd", x, y, 12.5) for x, y in ring)
    return b"GP" + struct.pack(">BBi", 0, 0b0000_0000, srs_id) + wkb


def test_a_geopackage_edited_in_qgis_exports_correctly(run_dir, tmp_path):
    """WAL journal, statuses set by UPDATE, a rewritten geometry, a hand-drawn polygon, QGIS uuid() braces."""
    cand = run_dir / "candidates.gpkg"
    inv = tmp_path / "inventory.gpkg"
    moved = square(7)
    drawn = square(9, size=30.0)
    with sql_connect(cand) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        conn.execute("UPDATE candidates SET status = 'accepted' WHERE id = 0")
        conn.execute("UPDATE candidates SET geom = ?, status = 'edited' WHERE id = 2",
                     (_qgis_style_blob(moved, 32654),))
        conn.execute("INSERT INTO candidates (geom, status) VALUES (?, 'accepted')",
                     (gpkg.encode_geometry(drawn, 32654),))
        braced = "{" + candidate(3, "rejected").properties["uuid"].upper() + "}"
        conn.execute("UPDATE candidates SET uuid = ? WHERE id = 3", (braced,))
        conn.commit()
        first = export_reviewed(cand, inv, reviewer="ana")
        assert (first.added, first.skipped) == (5, 0)
        again = export_reviewed(cand, inv, reviewer="ana")  # while QGIS still holds the file open
        assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
    got = rows(inv)
    assert candidate(3, "rejected").properties["uuid"] in got  # braces and case normalised
    edited = got[candidate(2, "edited").properties["uuid"]]
    assert edited.geometry["coordinates"][0][0][0] == pytest.approx(moved["coordinates"][0][0])
    manual = [f for f in got.values() if f.properties["source"] == "manual"]
    assert len(manual) == 1
    m = manual[0].properties
    assert m["uuid"] == inventory.manual_uuid(EVENT, drawn)  # deterministic: event + geometry
    assert m["event_id"] == EVENT and m["method"] == "manual" and m["threshold"] is None
    assert m["area_m2"] == pytest.approx(900.0) and m["scene_ids"] == ["ASC_1", "ASC_2", "DES_1", "DES_2"]


def test_split_polygon_parts_sharing_a_uuid_become_two_rows(run_dir, tmp_path):
    cand = run_dir / "candidates.gpkg"
    uid = candidate(1, "accepted").properties["uuid"]
    with sql_connect(cand) as conn:
        conn.execute("UPDATE candidates SET geom = ? WHERE id = 1", (gpkg.encode_geometry(square(1, 20.0), 32654),))
        conn.execute("INSERT INTO candidates (geom, status, uuid, method, event_id) VALUES (?, 'edited', ?, "
                     "'a_ratio', ?)", (gpkg.encode_geometry(square(5, 20.0), 32654), uid, EVENT))
    summary = export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="ana")
    assert summary.added == 4 and any("split" in w for w in summary.warnings)
    assert uid in rows(tmp_path / "inv.gpkg")
    assert export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="ana").unchanged == 4


def test_polygons_are_reprojected_into_the_inventory_crs(run_dir, tmp_path):
    inv = create_inventory(tmp_path / "wgs84.gpkg", "EPSG:4326")
    export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana")
    feats, crs = read_inventory(inv, statuses=None)
    assert crs == "EPSG:4326"
    for f in feats:
        lon, lat = f.geometry["coordinates"][0][0][0]
        assert 141 < lon < 142 and 42 < lat < 43.5
        assert f.properties["area_m2"] == pytest.approx(2500.0)
    # Unchanged on a second export even through the reprojection.
    assert export_reviewed(run_dir / "candidates.gpkg", inv, reviewer="ana").unchanged == 3


def test_candidates_without_crs_are_refused(run_dir, tmp_path):
    cand = run_dir / "candidates.gpkg"
    with sql_connect(cand) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE gpkg_geometry_columns SET srs_id = -1")
        conn.execute("UPDATE gpkg_contents SET srs_id = -1")
    with pytest.raises(InventoryError, match="coordinate reference system"):
        export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="ana")
    assert not (tmp_path / "inv.gpkg").exists()


def test_bad_inputs_give_clear_messages_and_touch_nothing(run_dir, tmp_path):
    cand = run_dir / "candidates.gpkg"
    with pytest.raises(InventoryError, match="reviewer"):
        export_reviewed(cand, tmp_path / "inv.gpkg", reviewer=" ")
    with pytest.raises(InventoryError, match="does not exist"):
        export_reviewed(tmp_path / "missing.gpkg", tmp_path / "inv.gpkg", reviewer="ana")
    with pytest.raises(InventoryError, match="different file"):
        export_reviewed(cand, cand, reviewer="ana")
    other = tmp_path / "other.sqlite"
    with sql_connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    before = sha(other)
    with pytest.raises(InventoryError):
        export_reviewed(cand, other, reviewer="ana")
    assert sha(other) == before
    not_inventory = tmp_path / "plain.gpkg"
    gpkg.write_features(not_inventory, "candidates", [candidate(1, "accepted")], crs=CRS, fields=CANDIDATE_FIELDS)
    before = sha(not_inventory)
    with pytest.raises(InventoryError, match="not a training inventory"):
        export_reviewed(cand, not_inventory, reviewer="ana")
    assert sha(not_inventory) == before
    with pytest.raises(InventoryError, match="does not exist"):
        read_inventory(tmp_path / "nope.gpkg")


def test_export_from_a_real_detection_run(tmp_path):
    from pathlib import Path

    from landslide_sar_plugin.core.catalog import parse_time
    from landslide_sar_plugin.core.detect import DetectParams, run_detection
    from landslide_sar_plugin.core.grid import parse_aoi

    sample = Path(inventory.__file__).resolve().parents[1] / "sample_data"
    event = json.loads((sample / "event.json").read_text())["config"]["event_time"]
    params = DetectParams(event_time=parse_time(event), aoi=parse_aoi("559000,4748000,560500,4749500,EPSG:32654"),
                          block_size=256)
    result = run_detection(sample / "scenes", sample / "dem.tif", tmp_path / "run", params)
    assert result.n_candidates > 0
    cand = result.files["candidates"]
    with sql_connect(cand) as conn:
        conn.execute("UPDATE candidates SET status = 'accepted'")
    summary = export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="ana")
    assert summary.added == result.n_candidates
    feats, _ = read_inventory(tmp_path / "inv.gpkg")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    used = sorted({s for role in ("pre", "post") for tr in run["stacks"][role] for s in tr["scenes"]})
    assert all(f.properties["scene_ids"] == used for f in feats) and len(used) == 14
    assert all(f.properties["synthetic"] is True and f.properties["source"] == "threshold" for f in feats)
    assert export_reviewed(cand, tmp_path / "inv.gpkg", reviewer="ana").added == 0
