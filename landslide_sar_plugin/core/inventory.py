"""The training inventory: a GeoPackage of reviewed landslide polygons with provenance.

Data flow (DESIGN.md): ... -> candidates -> **review -> inventory** -> training.
The analyst reviews ``candidates.gpkg`` in QGIS (status proposed / accepted /
edited / rejected, geometry fixes, polygons drawn by hand) and
:func:`export_reviewed` copies the reviewed polygons into one inventory layer
``landslides`` that accumulates events and runs.  Training reads it back with
:func:`read_inventory`.  No QGIS import: the dock, the Processing algorithm and
the command line all call these functions.

Guarantees of :func:`export_reviewed`
-------------------------------------
* **One transaction** (``BEGIN IMMEDIATE`` ... ``COMMIT``): any error rolls
  back, and an inventory that existed before is left byte-identical (one that
  the call created is removed again).  Two exports at the same time into the
  same file are serialised by SQLite's write lock: a writer waits up to
  :data:`~.gpkg.BUSY_TIMEOUT_S` (30 s, set before the first statement) for
  another program's lock, then fails with a sentence.
* **Crash-safe**: a process killed mid-export leaves SQLite's hot journal;
  the next open (read or write) rolls it back, so the inventory opens with
  every committed row.  A new inventory is built under a temporary name and
  linked into place, so six processes creating it at once all succeed.
* **Any GeoPackage writer**: an inventory saved by GDAL or QGIS (other
  column names, their R-tree triggers) is exported into with its spatial
  index kept current (see :mod:`.gpkg`).
* **Idempotent**: the ``uuid`` column is UNIQUE; the same uuid is one row.
  Exporting the same file twice adds nothing.  A polygon whose geometry,
  status or event changed since the last export updates its row (and
  ``updated_at``); everything else is counted ``unchanged`` and not touched.
* **Never writes to the candidates file**: QGIS may hold it open for editing.

Decisions
---------
* **Rejected polygons are exported too**, with ``status = 'rejected'``: a
  candidate the analyst looked at and rejected is a labelled *negative* (a
  false alarm of the method: logging, crop harvest, soil moisture), valuable
  for training and for measuring precision.  Consumers must filter:
  :func:`read_inventory` returns only ``accepted`` and ``edited`` polygons
  unless asked for ``rejected``.  ``proposed`` (not reviewed) features and
  features with an empty or unknown status are skipped and counted in
  ``skipped``.  A row already in the inventory is never deleted by an export;
  a later review changes its status.
* **Features without a uuid** (drawn by hand in QGIS) get a deterministic
  ``uuid5`` of (event id, geometry), so exporting the same hand-drawn polygon
  twice still gives one row, and nothing has to be written back into the
  candidates file.  Limitation: editing the geometry of such a polygon
  *after* it was exported gives a new uuid and therefore a second row; the
  dock avoids this by giving the ``uuid`` field a default value (QGIS
  expression ``uuid()``; braces are stripped here) so a hand-drawn polygon has
  a uuid from the moment it is created.  Their ``source`` is ``manual``.
* **Two features with the same uuid** in one candidates file (QGIS "Split
  features" copies attributes to both parts): the first (lowest fid) keeps
  the uuid, every further part gets ``uuid5(uuid, geometry)``; a warning says
  so.
* **Provenance** comes from the feature itself (``threshold``, ``method``,
  ``event_id``, ``model_sha256``, ``reviewer``, ``reviewed_at`` when those
  fields exist and are set) and otherwise from the run folder's ``run.json``
  (next to the candidates file, or ``run_json=``): scene ids of the pre/post
  stacks actually used, the threshold, the method, the model's sha256, and
  whether the input was SYNTHETIC.  ``area_m2`` is recomputed from the
  (possibly edited) geometry.
* **CRS**: polygons are reprojected into the inventory's CRS with
  :func:`rasterio.warp.transform_geom`.  A candidates layer without a CRS is
  refused with a message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import sqlite3
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import gpkg
from .gpkg import Feature, GeoPackageError

__all__ = [
    "LAYER",
    "INVENTORY_FIELDS",
    "STATUSES",
    "EXPORT_STATUSES",
    "TRAINING_STATUSES",
    "SOURCES",
    "MANUAL_UUID_NAMESPACE",
    "InventoryError",
    "ExportSummary",
    "create_inventory",
    "export_reviewed",
    "read_inventory",
    "inventory_counts",
    "manual_uuid",
    "normalise_uuid",
]

LAYER = "landslides"
SCHEMA_VERSION = 1
STATUSES = ("proposed", "accepted", "edited", "rejected")
EXPORT_STATUSES = ("accepted", "edited", "rejected")
TRAINING_STATUSES = ("accepted", "edited")
SOURCES = ("threshold", "model", "manual")

INVENTORY_FIELDS = [
    ("uuid", "TEXT"),
    ("event_id", "TEXT"),
    ("source", "TEXT"),  # threshold | model | manual
    ("status", "TEXT"),  # accepted | edited | rejected (proposed only if written by other tools)
    ("reviewer", "TEXT"),
    ("reviewed_at", "DATETIME"),  # ISO-8601 UTC
    ("method", "TEXT"),  # a_ratio, model name, ...
    ("threshold", "REAL"),  # in the score's units (dB for A_ratio, probability for a model)
    ("model_sha256", "TEXT"),
    ("scene_ids", "TEXT"),  # JSON list of scene ids used by the run
    ("area_m2", "REAL"),  # recomputed from the exported geometry
    ("mean_score", "REAL"),
    ("max_score", "REAL"),
    ("synthetic", "BOOLEAN"),  # derived from SYNTHETIC (simulated) input; NULL = unknown
    ("run_id", "TEXT"),
    ("source_file", "TEXT"),
    ("created_at", "DATETIME"),
    ("updated_at", "DATETIME"),
]
_FIELD_NAMES = [name for name, _ in INVENTORY_FIELDS]

# uuid5 namespace of hand-drawn polygons (no uuid in the candidates file) and of split parts.
MANUAL_UUID_NAMESPACE = uuidlib.UUID("0b6f6f3c-3f0e-5d55-9a0e-6c1a2f4e7d21")
BUSY_TIMEOUT_MS = int(gpkg.BUSY_TIMEOUT_S * 1000)  # waited for another program's lock


class InventoryError(ValueError):
    """The inventory or the candidates cannot be used; the message says what to do."""


@dataclass
class ExportSummary:
    """What one :func:`export_reviewed` call did (counts of candidate features)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    by_status: dict = field(default_factory=dict)  # exported (added+updated+unchanged) per status
    warnings: list = field(default_factory=list)
    inventory: str = ""
    created: bool = False

    def message(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.skipped} skipped (not reviewed)")
        if self.by_status.get("rejected"):
            text += f"; {self.by_status['rejected']} rejected polygons stored as negatives"
        return text


# --------------------------------------------------------------------------- helpers


def _crs(value):
    from rasterio.crs import CRS

    return CRS.from_user_input(value)


def _iso(t: dt.datetime) -> str:
    """GeoPackage DATETIME text: ``YYYY-MM-DDTHH:MM:SS.sssZ`` in UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    t = t.astimezone(dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _now_iso(now) -> str:
    if now is None:
        return _iso(dt.datetime.now(dt.timezone.utc))
    if isinstance(now, str):
        return _normalise_time(now)
    return _iso(now)


def _normalise_time(value) -> str | None:
    """Any ISO-8601 text (``Z`` or offset; naive = UTC) -> GeoPackage DATETIME text; unparseable kept."""
    if value is None or str(value).strip() == "":
        return None
    if isinstance(value, dt.datetime):
        return _iso(value)
    text = str(value).strip()
    try:
        return _iso(dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T")))
    except ValueError:
        return text


def normalise_uuid(value) -> str | None:
    """Canonical lower-case uuid text; QGIS's ``uuid()`` braces are accepted.  Empty -> None."""
    if value is None:
        return None
    text = str(value).strip()
    if not text or text.upper() == "NULL":
        return None
    try:
        return str(uuidlib.UUID(text.strip("{}")))
    except ValueError:
        return text  # some other identifier scheme: kept verbatim, still unique


def _coords_key(geometry: Mapping) -> str:
    def rnd(obj):
        if isinstance(obj, (list, tuple)):
            return [rnd(o) for o in obj]
        return round(float(obj), 6)

    return json.dumps([geometry["type"], rnd(geometry["coordinates"])], separators=(",", ":"))


def manual_uuid(event_id: str, geometry: Mapping) -> str:
    """Deterministic uuid of a polygon that has none (drawn by hand): uuid5 of event id and geometry."""
    return str(uuidlib.uuid5(MANUAL_UUID_NAMESPACE, f"manual|{event_id or ''}|{_coords_key(geometry)}"))


def _multipolygon(geometry: Mapping) -> dict:
    if geometry["type"] == "Polygon":
        return {"type": "MultiPolygon", "coordinates": [geometry["coordinates"]]}
    return {"type": geometry["type"], "coordinates": geometry["coordinates"]}


def _canonical(geometry: Mapping | None) -> bytes | None:
    """Byte form used to decide whether a geometry changed (2-D WKB of a MultiPolygon)."""
    if geometry is None:
        return None
    return gpkg.geometry_to_wkb(_multipolygon(geometry))


def _shoelace(ring) -> float:
    s = 0.0
    n = len(ring)
    for i in range(n):
        x0, y0 = ring[i][0], ring[i][1]
        x1, y1 = ring[(i + 1) % n][0], ring[(i + 1) % n][1]
        s += x0 * y1 - x1 * y0
    return abs(s) / 2.0


def _area_m2(geometry: Mapping, crs) -> float:
    """Area in square metres: shoelace in a metric projected CRS, else on an equal-area projection."""
    from rasterio.warp import transform_geom

    metric = crs.is_projected and (crs.linear_units or "").lower() in ("metre", "meter", "m", "metres", "meters")
    geom = geometry if metric else transform_geom(crs, "EPSG:6933", geometry)  # WGS 84 / NSIDC EASE-Grid 2.0
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    return float(sum(_shoelace(p[0]) - sum(_shoelace(h) for h in p[1:]) for p in polys if p))


def _as_lists(obj):
    if isinstance(obj, (list, tuple)):
        return [_as_lists(o) for o in obj]
    return float(obj)


def _reproject(geometry: Mapping, src, dst) -> dict:
    from rasterio.warp import transform_geom

    out = transform_geom(src, dst, geometry)
    return {"type": out["type"], "coordinates": _as_lists(out["coordinates"])}


def _number(value):
    if value is None or value == "":
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _text(value):
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# --------------------------------------------------------------------------- run provenance


@dataclass
class _Provenance:
    event_id: str | None = None
    method: str | None = None
    threshold: float | None = None
    model_sha256: str | None = None
    scene_ids: list = field(default_factory=list)
    run_id: str | None = None
    synthetic: bool | None = None


def _find_run_json(candidates: Path) -> Path | None:
    for name in ("run.json",):
        p = candidates.parent / name
        if p.is_file():
            return p
    return None


def _read_provenance(candidates: Path, run_json) -> _Provenance:
    path = Path(run_json) if run_json is not None else _find_run_json(candidates)
    prov = _Provenance()
    if path is None:
        return prov
    try:
        raw = path.read_bytes()
        info = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise InventoryError(f"cannot read the run record {path}: {exc}") from None
    if not isinstance(info, dict):
        raise InventoryError(f"{path} is not a run record (expected a JSON object)")
    prov.event_id = _text(info.get("event_id"))
    prov.method = _text(info.get("method"))
    prov.threshold = _number(info.get("threshold_db", info.get("threshold")))
    model = info.get("model")
    sha = info.get("model_sha256")
    if sha is None and isinstance(model, Mapping):
        sha = model.get("sha256")
    prov.model_sha256 = _text(sha)
    prov.run_id = _text(info.get("run_id")) or hashlib.sha256(raw).hexdigest()[:16]
    if "synthetic_input" in info:
        prov.synthetic = bool(info["synthetic_input"])
    ids: list[str] = []
    stacks = info.get("stacks")
    if isinstance(stacks, Mapping):
        for role in ("pre", "post"):
            for track in stacks.get(role) or []:
                for sid in (track.get("scenes") or []) if isinstance(track, Mapping) else []:
                    if sid not in ids:
                        ids.append(str(sid))
    if not ids:
        for scene in (info.get("inputs") or {}).get("scenes") or []:
            sid = scene.get("scene_id") if isinstance(scene, Mapping) else scene
            if sid and sid not in ids:
                ids.append(str(sid))
    prov.scene_ids = sorted(ids)
    # A threshold update (candidates_from_score with a prefix) records its own threshold next to it.
    sidecar = candidates.with_suffix(".json")
    if sidecar.is_file() and sidecar.resolve() != path.resolve():
        with contextlib.suppress(OSError, ValueError):
            side = json.loads(sidecar.read_text())
            if isinstance(side, Mapping) and _number(side.get("threshold")) is not None:
                prov.threshold = _number(side.get("threshold"))
    return prov


# --------------------------------------------------------------------------- create / open


def create_inventory(path: str | os.PathLike, crs, *, exist_ok: bool = False) -> Path:
    """Create an empty inventory GeoPackage (layer ``landslides``) in ``crs``.

    With ``exist_ok`` an existing valid inventory is accepted unchanged;
    otherwise an existing inventory layer raises :class:`InventoryError`.  A
    new file is built under a temporary name and linked into place in one
    step, so processes creating the same inventory at once never see a
    half-made file: one creates it, the others find it complete.
    """
    p = Path(path)
    _remove_dead_partials(p)
    if p.exists():
        if exist_ok:
            _check_inventory(p)
            return p
        if _has_layer(p):
            raise InventoryError(f"{p} already holds a '{LAYER}' inventory layer")
        _add_inventory_layer(p, crs)  # another GeoPackage: the inventory layer joins its layers
        return p
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.partial-{uuidlib.uuid4().hex[:8]}{p.suffix}")
    alive = _hold(tmp)  # tells _remove_dead_partials of other processes that this one is still building
    try:
        _add_inventory_layer(tmp, crs)
        try:
            _link_new(tmp, p)
        except FileExistsError:  # another process created it first
            if not exist_ok:
                raise InventoryError(f"{p} already holds a '{LAYER}' inventory layer") from None
            _check_inventory(p)
    finally:
        _remove(tmp)
        alive.close()
    return p


def _hold(path: Path):
    """Create ``path`` and hold an exclusive flock on it (POSIX; a plain open file elsewhere)."""
    fh = open(path, "a+b")  # noqa: SIM115 (closed by the caller when the file is done)
    if os.name != "nt":
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fh


def _remove_dead_partials(final: Path) -> list[str]:
    """Remove temporary inventories that a killed process was building beside ``final`` (their flock is gone)."""
    if os.name == "nt" or not final.parent.is_dir():
        return []
    import fcntl
    import re

    pattern = re.compile(rf"^\.{re.escape(final.stem)}\.partial-[0-9a-f]{{8}}{re.escape(final.suffix)}$")
    removed = []
    for entry in final.parent.iterdir():
        if not pattern.match(entry.name):
            continue
        try:
            with open(entry, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its builder is alive
                _remove(entry)
            removed.append(entry.name)
        except OSError:
            continue
    if removed:
        import logging

        logging.getLogger(__name__).warning("removed %d leftover(s) of inventory creations that were killed: %s",
                                            len(removed), ", ".join(sorted(removed)))
    return removed


def _link_new(tmp: Path, final: Path) -> None:
    """Put ``tmp`` at ``final`` atomically, failing with FileExistsError if ``final`` exists."""
    if os.name == "nt":
        os.rename(tmp, final)  # Windows: rename refuses an existing target
    else:
        os.link(tmp, final)  # POSIX rename would replace: a hard link fails if the name is taken


def _has_layer(path: Path) -> bool:
    try:
        with contextlib.closing(gpkg.open_connection(path, readonly=True)) as probe:
            return probe.execute("SELECT 1 FROM gpkg_contents WHERE table_name=?", (LAYER,)).fetchone() is not None
    except sqlite3.Error:
        return False


def _add_inventory_layer(path: Path, crs) -> None:
    existed = path.exists()
    try:
        conn = gpkg.connect(path)
    except GeoPackageError as exc:
        raise InventoryError(str(exc)) from None
    except sqlite3.Error as exc:
        raise InventoryError(f"{path} cannot be opened as a GeoPackage ({exc})") from None
    try:
        conn.execute("BEGIN IMMEDIATE")
        gpkg.create_layer(conn, LAYER, _crs(crs), INVENTORY_FIELDS, unique=("uuid",),
                          description=f"Landslide SAR mapper training inventory (schema {SCHEMA_VERSION})")
        conn.execute(gpkg._sql("CREATE INDEX IF NOT EXISTS {index} ON {layer} ({col})", index=f"{LAYER}_event_id",
                               layer=LAYER, col="event_id"))
        conn.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        conn.close()
        if not existed:
            _remove(path)
        raise
    conn.close()


def _inventory_meta(conn: sqlite3.Connection, path) -> tuple[int, object]:
    """(srs_id, CRS) of the inventory layer; raises InventoryError if it is not an inventory."""
    try:
        srs_id, fields = gpkg._layer_info(conn, LAYER)
    except GeoPackageError:
        raise InventoryError(f"{path} has no '{LAYER}' layer; it is not a training inventory "
                             f"(create one with create_inventory, or pick another file)") from None
    missing = [n for n in _FIELD_NAMES if n not in fields]
    if missing:
        raise InventoryError(f"{path}: the '{LAYER}' layer lacks the inventory field(s) {', '.join(missing)}")
    crs_text = gpkg.read_crs_wkt(conn, srs_id)
    if crs_text is None:
        raise InventoryError(f"{path}: the inventory layer has no coordinate reference system")
    return srs_id, _crs(crs_text)


def _check_inventory(path: Path) -> None:
    try:
        with contextlib.closing(gpkg.open_connection(path, readonly=True)) as conn:
            _inventory_meta(conn, path)
    except sqlite3.Error as exc:
        raise InventoryError(_sqlite_message(path, exc)) from None


def _sqlite_message(path, exc: sqlite3.Error) -> str:
    """One sentence for an SQLite failure on the inventory ``path``."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return (f"{path} is locked by another program (is it being edited in QGIS? save or stop editing "
                f"and try again); waited {gpkg.BUSY_TIMEOUT_S:.0f} s")
    if "disk is full" in text or "disk I/O" in text:
        return f"{path} cannot be written: the disk is full or failing ({text}); free space and try again"
    if "readonly" in text or "permission" in text.lower():
        return f"{path} cannot be written ({text}); check the file's and its folder's permissions"
    return f"{path} is not a readable GeoPackage ({text})"


# --------------------------------------------------------------------------- export


def _source_of(props: Mapping, had_uuid: bool, method: str | None) -> str:
    """threshold | model | manual: who drew the polygon.

    A polygon drawn by hand in QGIS has ``method = 'manual'`` (the dock's
    default value) and, since the dock gives new features a uuid, a uuid too:
    the method says manual, so it is manual whatever else the feature holds.
    """
    given = _text(props.get("source"))
    if given in SOURCES:
        return given
    m = (method or "").strip().lower()
    if not had_uuid or not m or m == "manual":
        return "manual"
    if m in ("a_ratio", "threshold", "ratio") or m.startswith("a_ratio"):
        return "threshold"
    return "model"


def _prepare(features: list[Feature], cand_crs, inv_crs, prov: _Provenance, *, reviewer: str, statuses,
             now_iso: str, event_id: str | None, source_file: str, summary: ExportSummary) -> list[dict]:
    """Candidate features -> inventory rows (dicts with '_geom'), in fid order, uuids deduplicated."""
    same_crs = cand_crs == inv_crs
    rows: list[dict] = []
    seen: set[str] = set()
    for feat in sorted(features, key=lambda f: (f.fid is None, f.fid or 0)):
        props = feat.properties
        status = (_text(props.get("status")) or "").lower()
        if status not in statuses or feat.geometry is None:
            summary.skipped += 1
            if status in statuses and feat.geometry is None:
                summary.warnings.append(f"feature fid {feat.fid} has no geometry; skipped")
            continue
        ev = event_id or _text(props.get("event_id")) or prov.event_id or ""
        given = normalise_uuid(props.get("uuid"))
        uid = given or manual_uuid(ev, feat.geometry)
        if uid in seen:
            new = str(uuidlib.uuid5(MANUAL_UUID_NAMESPACE, f"part|{uid}|{_coords_key(feat.geometry)}"))
            summary.warnings.append(f"feature fid {feat.fid} repeats uuid {uid} (a split polygon?); "
                                    f"exported as {new}")
            uid = new
        seen.add(uid)
        method = _text(props.get("method"))
        if method is None and given:
            method = prov.method
        source = _source_of(props, given is not None, method)
        geom = feat.geometry if same_crs else _reproject(feat.geometry, cand_crs, inv_crs)
        manual = source == "manual"
        threshold = None if manual else _number(props.get("threshold"))  # no threshold drew a manual polygon
        if threshold is None and not manual:
            threshold = prov.threshold
        sha = _text(props.get("model_sha256")) or (None if manual else prov.model_sha256)
        rows.append({
            "_geom": _multipolygon(geom),
            "uuid": uid,
            "event_id": ev or None,
            "source": source,
            "status": status,
            "reviewer": _text(props.get("reviewer")) or reviewer,
            "reviewed_at": _normalise_time(props.get("reviewed_at")) or now_iso,
            "method": method if not manual else (method or "manual"),
            "threshold": threshold,
            "model_sha256": sha,
            "scene_ids": json.dumps(prov.scene_ids) if prov.scene_ids else None,
            "area_m2": round(_area_m2(feat.geometry, cand_crs), 3),
            "mean_score": None if manual else _number(props.get("mean_score")),
            "max_score": None if manual else _number(props.get("max_score")),
            "synthetic": prov.synthetic,
            "run_id": prov.run_id,
            "source_file": source_file,
        })
    return rows


def _write_rows(conn: sqlite3.Connection, rows: list[dict], now_iso: str, summary: ExportSummary) -> None:
    """Insert new uuids, update changed rows; inside the caller's transaction."""
    cols = gpkg.layer_columns(conn, LAYER)  # an inventory saved by GDAL/QGIS may name fid and geom otherwise
    new: list[Feature] = []
    changed = False
    for row in rows:
        existing = conn.execute(gpkg._sql("SELECT {pk}, {geom}, {status}, {event} FROM {layer} WHERE {uuid} = ?",
                                          pk=cols.pk, geom=cols.geom, status="status", event="event_id",
                                          uuid="uuid", layer=LAYER), (row["uuid"],)).fetchone()
        attrs = {k: v for k, v in row.items() if not k.startswith("_")}
        summary.by_status[row["status"]] = summary.by_status.get(row["status"], 0) + 1
        if existing is None:
            attrs.update(created_at=now_iso, updated_at=now_iso)
            new.append(Feature(row["_geom"], attrs))
            summary.added += 1
            continue
        fid, blob, status, event = existing
        try:
            old_geom = gpkg.decode_geometry(blob)
        except GeoPackageError:
            old_geom = None  # a row some other program broke: this export repairs it
        if (_canonical(old_geom) == _canonical(row["_geom"]) and status == row["status"]
                and (event or None) == (row["event_id"] or None)):
            summary.unchanged += 1
            continue
        attrs["updated_at"] = now_iso
        attrs.pop("uuid")
        names = list(attrs)
        statement = gpkg._sql("UPDATE {layer} SET ({cols}) = (", layer=LAYER, cols=[cols.geom, *names])
        conn.execute(statement + ", ".join("?" * (len(names) + 1)) + gpkg._sql(") WHERE {pk} = ?", pk=cols.pk),
                     [gpkg.encode_geometry(row["_geom"], cols.srs_id)]
                     + [gpkg._to_sql_value(attrs[n]) for n in names] + [fid])
        summary.updated += 1
        changed = True
    if new:
        gpkg.insert_features(conn, LAYER, new)  # also refreshes the layer extent
    elif changed:
        gpkg._update_extent(conn, LAYER)


def export_reviewed(
    candidates_gpkg: str | os.PathLike,
    inventory_gpkg: str | os.PathLike,
    *,
    reviewer: str,
    run_json: str | os.PathLike | None = None,
    statuses: Iterable[str] = EXPORT_STATUSES,
    event_id: str | None = None,
    layer: str | None = None,
    crs=None,
    now: dt.datetime | str | None = None,
) -> ExportSummary:
    """Copy reviewed polygons of ``candidates_gpkg`` into the inventory, in one transaction.

    ``statuses``: which review states to export (default accepted, edited and
    rejected; see the module docstring for why rejected polygons are kept).
    ``run_json``: the run record giving provenance (default: ``run.json`` next
    to the candidates file, if any).  ``event_id`` overrides the event of
    every exported feature.  ``layer``: the candidates layer (default the
    first).  ``crs``: CRS of a new inventory (default the candidates' CRS);
    an existing inventory keeps its CRS and polygons are reprojected into it.
    ``now`` fixes the timestamps (tests).  The inventory is created when
    missing.  Raises :class:`InventoryError` with a message for the user.
    """
    if not _text(reviewer):
        raise InventoryError("give the reviewer's name (it is stored with every exported polygon)")
    reviewer = str(reviewer).strip()
    statuses = tuple(s.lower() for s in statuses)
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise InventoryError(f"unknown status(es) {', '.join(bad)}; use {', '.join(STATUSES)}")
    cand = Path(candidates_gpkg)
    inv = Path(inventory_gpkg)
    if not cand.is_file():
        raise InventoryError(f"candidates file {cand} does not exist")
    if inv.exists() and inv.resolve() == cand.resolve():
        raise InventoryError("the inventory must be a different file from the candidates being exported")
    try:
        features, cand_crs_text = gpkg.read_features(cand, layer)
    except GeoPackageError as exc:
        raise InventoryError(str(exc)) from None
    except sqlite3.DatabaseError as exc:
        raise InventoryError(f"cannot read {cand} ({exc}); save the edits in QGIS and try again") from None
    if cand_crs_text is None:
        raise InventoryError(f"{cand} declares no coordinate reference system; set one in QGIS "
                             "(Layer Properties > Source) before exporting")
    cand_crs = _crs(cand_crs_text)
    prov = _read_provenance(cand, run_json)
    now_iso = _now_iso(now)
    summary = ExportSummary(inventory=str(inv))

    created = not inv.exists()
    if created:
        create_inventory(inv, crs if crs is not None else cand_crs, exist_ok=True)  # race-free, see there
        summary.created = True
    else:
        _check_inventory(inv)  # never turn some other SQLite file into a GeoPackage
    try:
        _export_transaction(inv, features, cand_crs, prov, reviewer, statuses, now_iso, event_id, cand, summary)
    except BaseException:
        if created:
            _remove(inv)
        raise
    return summary


def _export_transaction(inv: Path, features, cand_crs, prov, reviewer, statuses, now_iso, event_id, cand,
                        summary: ExportSummary) -> None:
    """The export's one write transaction (BEGIN IMMEDIATE ... COMMIT); SQLite failures become sentences."""
    try:
        conn = gpkg.open_connection(inv)  # busy timeout from the first statement; a hot journal is rolled back
    except sqlite3.Error as exc:
        raise InventoryError(_sqlite_message(inv, exc)) from None
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            _, inv_crs = _inventory_meta(conn, inv)
            rows = _prepare(features, cand_crs, inv_crs, prov, reviewer=reviewer, statuses=statuses,
                            now_iso=now_iso, event_id=_text(event_id), source_file=str(cand.resolve()),
                            summary=summary)
            _write_rows(conn, rows, now_iso, summary)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise InventoryError(_sqlite_message(inv, exc)) from None
    finally:
        conn.close()


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal"),
              path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


# --------------------------------------------------------------------------- read


def read_inventory(
    path: str | os.PathLike,
    *,
    statuses: Iterable[str] | None = TRAINING_STATUSES,
    event_ids: Iterable[str] | None = None,
    include_synthetic: bool = True,
) -> tuple[list[Feature], str]:
    """Inventory polygons for training: ``(features, crs)``.

    Default: accepted and edited polygons only (positives).  Pass
    ``statuses=("rejected",)`` for the reviewed negatives, ``None`` for all.
    ``scene_ids`` comes back as a list.  ``include_synthetic=False`` drops
    polygons derived from SYNTHETIC (simulated) input.
    """
    p = Path(path)
    if not p.is_file():
        raise InventoryError(f"inventory {p} does not exist")
    try:
        features, crs = gpkg.read_features(p, LAYER)
    except GeoPackageError as exc:
        raise InventoryError(str(exc)) from None
    wanted = None if statuses is None else {s.lower() for s in statuses}
    events = None if event_ids is None else set(event_ids)
    out = []
    for f in features:
        props = f.properties
        if wanted is not None and (props.get("status") or "").lower() not in wanted:
            continue
        if events is not None and props.get("event_id") not in events:
            continue
        if not include_synthetic and props.get("synthetic"):
            continue
        ids = props.get("scene_ids")
        try:
            props["scene_ids"] = json.loads(ids) if ids else []
        except ValueError:
            props["scene_ids"] = [ids]
        if props.get("synthetic") is not None:
            props["synthetic"] = bool(props["synthetic"])
        out.append(f)
    return out, crs


def inventory_counts(path: str | os.PathLike) -> dict[str, int]:
    """Row count per status plus ``total``."""
    p = Path(path)
    if not p.is_file():
        raise InventoryError(f"inventory {p} does not exist")
    try:
        with contextlib.closing(gpkg.open_connection(p, readonly=True)) as conn:
            _inventory_meta(conn, p)
            query = gpkg._sql("SELECT COALESCE(status, ''), COUNT(*) FROM {layer} GROUP BY status", layer=LAYER)
            counts = dict(conn.execute(query))
    except sqlite3.Error as exc:
        raise InventoryError(_sqlite_message(p, exc)) from None
    counts["total"] = sum(counts.values())
    return counts
