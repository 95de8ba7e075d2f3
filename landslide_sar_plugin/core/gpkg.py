"""Minimal GeoPackage (OGC 12-128r18) vector reading and writing with the standard library.

Why not GDAL/OGR or Fiona: the plugin must run on the Python that QGIS ships,
where the engine's only hard dependencies are numpy, scipy and rasterio, and
rasterio does not write vectors.  A GeoPackage is an SQLite database, so the
standard library's :mod:`sqlite3` gives us real transactions (the training
inventory relies on them) with no extra wheel.

Scope: 2-D polygon and multipolygon feature tables with typed attribute
columns.  Geometries are exchanged as GeoJSON-like mappings
(``{"type": "Polygon", "coordinates": [...]}``), the form that
:func:`rasterio.features.shapes` produces and :func:`rasterio.features.rasterize`
consumes.  Reading accepts what QGIS writes after an edit: envelopes of any
kind, Z/M coordinates (dropped), polygons and multipolygons, empty geometries.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import re
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300  # GeoPackage 1.3.0
CUSTOM_SRS_ID_BASE = 100000

FIELD_TYPES = ("INTEGER", "REAL", "TEXT", "DATETIME", "BOOLEAN")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class GeoPackageError(ValueError):
    """A GeoPackage is missing, malformed, or holds something this module does not read."""


@dataclass
class Feature:
    """One vector feature: a GeoJSON-like geometry mapping and its attributes."""

    geometry: dict | None
    properties: dict = field(default_factory=dict)
    fid: int | None = None


# --------------------------------------------------------------------------- WKB


def _ring_bytes(ring: Sequence[Sequence[float]]) -> bytes:
    pts = [(float(p[0]), float(p[1])) for p in ring]
    if pts and pts[0] != pts[-1]:
        pts.append(pts[0])
    return struct.pack("<I", len(pts)) + b"".join(struct.pack("<dd", x, y) for x, y in pts)


def _polygon_wkb(rings: Sequence) -> bytes:
    return struct.pack("<BII", 1, 3, len(rings)) + b"".join(_ring_bytes(r) for r in rings)


def geometry_to_wkb(geometry: Mapping) -> bytes:
    """Encode a GeoJSON-like Polygon or MultiPolygon as little-endian ISO WKB (2-D)."""
    gtype = geometry["type"]
    coords = geometry["coordinates"]
    if gtype == "Polygon":
        return _polygon_wkb(coords)
    if gtype == "MultiPolygon":
        return struct.pack("<BII", 1, 6, len(coords)) + b"".join(_polygon_wkb(p) for p in coords)
    raise GeoPackageError(f"only Polygon and MultiPolygon geometries are supported, not {gtype}")


class _WkbReader:
    def __init__(self, buf: bytes, offset: int = 0):
        self.buf = buf
        self.pos = offset

    def _unpack(self, fmt: str):
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return vals

    def geometry(self) -> dict:
        (order,) = self._unpack("B")
        endian = "<" if order == 1 else ">"
        (raw_type,) = self._unpack(endian + "I")
        ndims = 2
        if raw_type & 0x80000000:  # EWKB Z flag
            ndims += 1
        if raw_type & 0x40000000:  # EWKB M flag
            ndims += 1
        base = raw_type & 0x0FFFFFFF
        iso_dim, base = divmod(base, 1000)
        ndims += {0: 0, 1: 1, 2: 1, 3: 2}[iso_dim]
        if base == 3:
            return {"type": "Polygon", "coordinates": self._polygon(endian, ndims)}
        if base == 6:
            (n,) = self._unpack(endian + "I")
            polys = []
            for _ in range(n):
                sub = self.geometry()
                polys.append(sub["coordinates"])
            return {"type": "MultiPolygon", "coordinates": polys}
        raise GeoPackageError(f"unsupported WKB geometry type {raw_type} (expected polygons)")

    def _polygon(self, endian: str, ndims: int) -> list:
        (nrings,) = self._unpack(endian + "I")
        rings = []
        for _ in range(nrings):
            (npts,) = self._unpack(endian + "I")
            flat = self._unpack(endian + "d" * (npts * ndims))
            rings.append([(flat[i], flat[i + 1]) for i in range(0, len(flat), ndims)])
        return rings


def _bounds(geometry: Mapping) -> tuple[float, float, float, float]:
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    xs = [p[0] for poly in polys for ring in poly for p in ring]
    ys = [p[1] for poly in polys for ring in poly for p in ring]
    return min(xs), min(ys), max(xs), max(ys)


def encode_geometry(geometry: Mapping | None, srs_id: int) -> bytes | None:
    """A GeoPackage geometry blob: the ``GP`` header with an XY envelope, then WKB."""
    if geometry is None:
        return None
    minx, miny, maxx, maxy = _bounds(geometry)
    flags = 0b0000_0011  # little-endian, envelope type 1 (minx, maxx, miny, maxy)
    header = b"GP" + struct.pack("<BBi", 0, flags, srs_id) + struct.pack("<dddd", minx, maxx, miny, maxy)
    return header + geometry_to_wkb(geometry)


def decode_geometry(blob: bytes | None) -> dict | None:
    """Decode a GeoPackage geometry blob to a GeoJSON-like mapping (None for NULL/empty)."""
    if blob is None:
        return None
    blob = bytes(blob)
    if blob[:2] != b"GP":
        raise GeoPackageError("geometry blob does not start with the GeoPackage magic 'GP'")
    flags = blob[3]
    if flags & 0b0001_0000:  # empty geometry
        return None
    env_kind = (flags >> 1) & 0b111
    env_len = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(env_kind)
    if env_len is None:
        raise GeoPackageError(f"invalid GeoPackage envelope indicator {env_kind}")
    return _WkbReader(blob, 8 + env_len).geometry()


# --------------------------------------------------------------------------- schema


def _check_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise GeoPackageError(f"{name!r} is not a valid table or column name (letters, digits, _)")
    return name


def _sql(template: str, **identifiers: str | Sequence[str]) -> str:
    """Fill table and column names into an SQL template, validated and double-quoted.

    SQLite binds values but not identifiers, so names must be spliced into the
    statement text; every name passes :func:`_check_identifier` first (a list
    becomes a comma-separated column list).  Values always go through ``?``.
    """
    quoted = {}
    for key, value in identifiers.items():
        names = [value] if isinstance(value, str) else list(value)
        quoted[key] = ", ".join('"' + _check_identifier(n) + '"' for n in names)
    return template.format(**quoted)


def _srs_row(crs) -> tuple[int, str, str, int, str]:
    """(srs_id, name, organization, org id, WKT) for a rasterio-compatible CRS."""
    from rasterio.crs import CRS

    crs = CRS.from_user_input(crs)
    epsg = crs.to_epsg()
    wkt = crs.to_wkt()
    if epsg is not None:
        return epsg, f"EPSG:{epsg}", "EPSG", epsg, wkt
    # Stable custom id derived from the WKT, so the same CRS maps to the same row.
    custom = CUSTOM_SRS_ID_BASE + zlib.crc32(wkt.encode()) % 100000
    return custom, "custom", "NONE", custom, wkt


_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL, srs_id INTEGER PRIMARY KEY, organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT);
CREATE TABLE IF NOT EXISTS gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY, data_type TEXT NOT NULL, identifier TEXT UNIQUE,
  description TEXT DEFAULT '', last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (
  table_name TEXT NOT NULL, column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL, z TINYINT NOT NULL, m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
"""

_DEFAULT_SRS = [
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian coordinate reference system"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic coordinate reference system"),
    (
        "WGS 84 geodetic",
        4326,
        "EPSG",
        4326,
        'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
        'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],'
        'UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AXIS["Latitude",NORTH],'
        'AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]',
        "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid",
    ),
]


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating if needed) a GeoPackage and make sure the core tables exist."""
    conn = sqlite3.connect(str(path), isolation_level=None)  # explicit BEGIN/COMMIT
    conn.execute("PRAGMA foreign_keys = ON")
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    if app_id == 0:
        conn.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
    elif app_id != GPKG_APPLICATION_ID:
        conn.close()
        raise GeoPackageError(f"{path} is an SQLite database but not a GeoPackage")
    conn.executescript(_BASE_SCHEMA)
    conn.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", _DEFAULT_SRS)
    return conn


def ensure_srs(conn: sqlite3.Connection, crs) -> int:
    """Register ``crs`` in ``gpkg_spatial_ref_sys`` if needed and return its srs_id."""
    srs_id, name, org, org_id, wkt = _srs_row(crs)
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", (name, srs_id, org, org_id, wkt, None)
    )
    return srs_id


def create_layer(
    conn: sqlite3.Connection,
    layer: str,
    crs,
    fields: Sequence[tuple[str, str]],
    *,
    geometry_type: str = "MULTIPOLYGON",
    description: str = "",
    unique: Sequence[str] = (),
) -> int:
    """Create an empty feature table with ``fid``, ``geom`` and typed attribute columns.

    ``fields`` is a sequence of ``(name, type)`` with types from :data:`FIELD_TYPES`.
    ``unique`` names columns that get a UNIQUE constraint (used for uuid upserts).
    Returns the srs_id.  Raises :class:`GeoPackageError` if the layer exists.
    """
    _check_identifier(layer)
    exists = conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name = ?", (layer,)).fetchone()
    if exists:
        raise GeoPackageError(f"layer {layer!r} already exists")
    cols = ["fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", f"geom {geometry_type.upper()}"]
    for name, ftype in fields:
        _check_identifier(name)
        if ftype.upper() not in FIELD_TYPES:
            raise GeoPackageError(f"field {name!r}: type must be one of {FIELD_TYPES}, not {ftype!r}")
        cols.append(f'"{name}" {ftype.upper()}' + (" UNIQUE" if name in unique else ""))
    srs_id = ensure_srs(conn, crs)
    conn.execute(_sql("CREATE TABLE {layer} (", layer=layer) + ", ".join(cols) + ")")
    conn.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, description, srs_id) "
        "VALUES (?, 'features', ?, ?, ?)",
        (layer, layer, description, srs_id),
    )
    conn.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?, 'geom', ?, ?, 0, 0)", (layer, geometry_type.upper(), srs_id)
    )
    return srs_id


def _to_sql_value(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, _dt.datetime):
        return value.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _as_multipolygon(geometry: Mapping | None) -> dict | None:
    if geometry is not None and geometry["type"] == "Polygon":
        return {"type": "MultiPolygon", "coordinates": [geometry["coordinates"]]}
    return dict(geometry) if geometry is not None else None


def insert_features(
    conn: sqlite3.Connection, layer: str, features: Iterable[Feature], *, multipolygon: bool = True
) -> int:
    """Insert features (no transaction handling: the caller owns it). Returns the count."""
    srs_id, fields = _layer_info(conn, layer)
    n = 0
    for feat in features:
        geom = _as_multipolygon(feat.geometry) if multipolygon else feat.geometry
        unknown = set(feat.properties) - set(fields)
        if unknown:
            raise GeoPackageError(f"layer {layer!r} has no field(s) {sorted(unknown)}")
        names = list(feat.properties)
        statement = _sql("INSERT INTO {layer} ({cols}) VALUES (", layer=layer, cols=["geom", *names])
        conn.execute(
            statement + ", ".join("?" * (len(names) + 1)) + ")",
            [encode_geometry(geom, srs_id)] + [_to_sql_value(feat.properties[c]) for c in names],
        )
        n += 1
    _update_extent(conn, layer)
    return n


def _update_extent(conn: sqlite3.Connection, layer: str) -> None:
    minx = miny = float("inf")
    maxx = maxy = float("-inf")
    for (blob,) in conn.execute(_sql("SELECT geom FROM {layer} WHERE geom IS NOT NULL", layer=layer)):
        blob = bytes(blob)
        if blob[3] & 0b1110 and not blob[3] & 0b1_0000:
            x0, x1, y0, y1 = struct.unpack_from("<dddd" if blob[3] & 1 else ">dddd", blob, 8)
        else:
            geom = decode_geometry(blob)
            if geom is None:
                continue
            x0, y0, x1, y1 = _bounds(geom)
        minx, miny, maxx, maxy = min(minx, x0), min(miny, y0), max(maxx, x1), max(maxy, y1)
    if minx <= maxx:
        conn.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=?, "
            "last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
            (minx, miny, maxx, maxy, layer),
        )


def _layer_info(conn: sqlite3.Connection, layer: str) -> tuple[int, dict[str, str]]:
    row = conn.execute(
        "SELECT srs_id, column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
    ).fetchone()
    if row is None:
        raise GeoPackageError(f"no feature layer named {layer!r}")
    srs_id, geom_col = row
    fields = {
        r[1]: (r[2] or "").upper()
        for r in conn.execute(_sql("PRAGMA table_info({layer})", layer=layer))
        if r[1] not in ("fid", geom_col) and not r[5]
    }
    return srs_id, fields


def list_layers(path: str | os.PathLike) -> list[str]:
    """Names of the feature layers in a GeoPackage, in creation order."""
    _require_file(path)
    with contextlib.closing(_open_readonly(path)) as conn:
        return [r[0] for r in conn.execute("SELECT table_name FROM gpkg_geometry_columns ORDER BY rowid")]


def _require_file(path) -> None:
    if not Path(path).is_file():
        raise GeoPackageError(f"{path}: no such GeoPackage file")


def _open_readonly(path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
    except sqlite3.DatabaseError as exc:
        raise GeoPackageError(f"{path} is not a readable GeoPackage ({exc})") from None
    return conn


def read_crs_wkt(conn: sqlite3.Connection, srs_id: int) -> str | None:
    row = conn.execute("SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys "
                       "WHERE srs_id = ?", (srs_id,)).fetchone()
    if row is None or row[2] == "undefined":
        return None
    org, org_id, definition = row
    if org and org.upper() == "EPSG":
        return f"EPSG:{org_id}"
    return definition


def iter_features(conn: sqlite3.Connection, layer: str) -> Iterator[Feature]:
    """Yield the features of ``layer`` on an open connection."""
    _check_identifier(layer)
    _, fields = _layer_info(conn, layer)
    (geom_col,) = conn.execute(
        "SELECT column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
    ).fetchone()
    names = list(fields)
    pk = next((r[1] for r in conn.execute(_sql("PRAGMA table_info({layer})", layer=layer)) if r[5]), "fid")
    query = _sql("SELECT {cols} FROM {layer} ORDER BY {pk}", cols=[pk, geom_col, *names], layer=layer, pk=pk)
    for row in conn.execute(query):
        yield Feature(geometry=decode_geometry(row[1]), properties=dict(zip(names, row[2:])), fid=row[0])


def read_features(path: str | os.PathLike, layer: str | None = None) -> tuple[list[Feature], str | None]:
    """Read all features of one layer (the first one if ``layer`` is None).

    Returns ``(features, crs)`` where ``crs`` is ``"EPSG:n"`` or a WKT string
    (None if the layer declares no CRS).
    """
    _require_file(path)
    with contextlib.closing(_open_readonly(path)) as conn:
        layers = [r[0] for r in conn.execute("SELECT table_name FROM gpkg_geometry_columns ORDER BY rowid")]
        if not layers:
            raise GeoPackageError(f"{path} holds no feature layer")
        if layer is None:
            layer = layers[0]
        elif layer not in layers:
            raise GeoPackageError(f"{path} has no layer {layer!r}; it has {', '.join(layers)}")
        srs_id, _ = _layer_info(conn, layer)
        return list(iter_features(conn, layer)), read_crs_wkt(conn, srs_id)


def write_features(
    path: str | os.PathLike,
    layer: str,
    features: Iterable[Feature],
    *,
    crs,
    fields: Sequence[tuple[str, str]],
    description: str = "",
    extra_layers: Sequence[tuple[str, Iterable[Feature], Sequence[tuple[str, str]]]] = (),
    timestamp: str | None = None,
) -> Path:
    """Write a new GeoPackage holding ``layer`` (and optional ``extra_layers``), atomically.

    The file is built under a temporary name in the same folder and renamed
    over ``path`` only when complete, so readers never see a partial file.
    Polygons are stored as MULTIPOLYGON so later edits that split a polygon
    keep the declared type.  ``timestamp`` (ISO-8601) fixes ``last_change`` so
    the same input gives a byte-identical file (the sample scene relies on it).
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.stem}.partial-{uuid.uuid4().hex[:8]}{final.suffix}")
    try:
        conn = connect(tmp)
        try:
            conn.execute("BEGIN")
            for name, feats, flds in [(layer, features, fields), *extra_layers]:
                create_layer(conn, name, crs, flds, description=description)
                insert_features(conn, name, feats)
                if timestamp is not None:
                    conn.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?", (timestamp, name))
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return final
