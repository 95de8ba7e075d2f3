"""GeoPackage (OGC 12-128r18) vector reading and writing with the standard library's :mod:`sqlite3`.

What a file written here holds: the core tables, one feature table per layer
(``fid``, ``geom``, typed columns), a standard **R-tree spatial index**
(``rtree_<table>_<column>`` with the spec's triggers) registered in
**gpkg_extensions** as ``gpkg_rtree_index``, ``last_change`` with
milliseconds.  The files pass GDAL's ``validate_gpkg.py`` (tests/tools), and
GDAL and QGIS open them with their spatial index.

Files that GDAL or QGIS wrote carry R-tree triggers calling ``ST_IsEmpty``,
``ST_MinX`` ... which plain SQLite lacks (``no such function: ST_IsEmpty``);
every connection made here registers them (:func:`register_functions`, with
``ST_GeometryType``, ``ST_SRID`` and ``GPKG_IsAssignable`` of the optional
geometry-type and srs triggers), so we insert into such files with their
index kept current.  Table and column names are double-quoted (any name QGIS
accepts, hyphens, spaces, non-ASCII letters), never refused.

Why hand-written SQLite and not GDAL/OGR (measured on this machine, Debian 12,
QGIS 3.22, GDAL 3.6.2; rasterio 1.4.4 bundles GDAL 3.10.3):

* ``osgeo`` (GDAL's bindings) is importable in QGIS's Python on every
  platform, but **not** where the command line and training run: rasterio's
  wheel ships its own ``libgdal`` and no ``osgeo`` (``pip show -f rasterio``
  lists none); here ``.venv`` sees ``osgeo`` only through
  ``--system-site-packages``.  Going through OGR would mean two writers (OGR
  in QGIS, something else in a plain venv), each to be tested.
* The inventory's guarantees rest on explicit transactions: ``BEGIN
  IMMEDIATE``, one commit for a whole export, a documented busy timeout.
  Under a lock held by another connection, OGR (3.6.2, exceptions on) waited
  a fixed 15 s, ``CreateFeature`` returned error 6 without raising, and
  ``CommitTransaction`` returned success: nothing was written and nothing
  said so.  With :mod:`sqlite3` we wait the timeout we choose and fail
  with a sentence.
* Two GDALs in one process (rasterio's 3.10 and the system's 3.6 through
  ``osgeo``) did coexist in a test here, but their PROJ databases and driver
  options differ per platform; one fewer moving part in QGIS.
* What OGR would add that users see (spatial index, extensions, identifier
  quoting, foreign triggers) is a few hundred lines here and tested against
  GDAL's validator and against files GDAL wrote.

Scope: 2-D polygon and multipolygon feature tables.  Geometries are
GeoJSON-like mappings, as :func:`rasterio.features.shapes` gives and
:func:`rasterio.features.rasterize` takes.  Reading accepts what QGIS writes
after an edit: any envelope, Z/M coordinates (dropped), either byte order,
empty geometries.  A malformed geometry blob is a :class:`GeoPackageError`
naming the feature, never a crash: declared counts are checked against the
blob's length before anything is allocated.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import sqlite3
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

GPKG_APPLICATION_ID = 0x47504B47  # "GPKG"
GPKG_USER_VERSION = 10300  # GeoPackage 1.3.0
CUSTOM_SRS_ID_BASE = 100000
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another program's lock before it gives up
RTREE_EXTENSION = ("gpkg_rtree_index", "http://www.geopackage.org/spec120/#extension_rtree", "write-only")

FIELD_TYPES = ("INTEGER", "REAL", "TEXT", "DATETIME", "BOOLEAN")


class GeoPackageError(ValueError):
    """A GeoPackage is missing, malformed, or holds something this module does not read."""


@dataclass
class Feature:
    """One vector feature: a GeoJSON-like geometry mapping and its attributes."""

    geometry: dict | None
    properties: dict = field(default_factory=dict)
    fid: int | None = None


# --------------------------------------------------------------------------- WKB writing


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


# --------------------------------------------------------------------------- WKB reading (bounded)


_BASE_TYPES = {1: "Point", 2: "LineString", 3: "Polygon", 4: "MultiPoint", 5: "MultiLineString",
               6: "MultiPolygon", 7: "GeometryCollection"}
MAX_NESTING = 8  # geometry collections inside collections; deeper is not a real file


class _WkbReader:
    """Reads WKB from ``buf`` with every length checked against the bytes that are really there."""

    def __init__(self, buf: bytes, offset: int = 0):
        self.buf = buf
        self.pos = offset

    def _unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise GeoPackageError("the geometry blob is truncated")
        vals = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return vals

    def _count(self, endian: str, item_bytes: int) -> int:
        (n,) = self._unpack(endian + "I")
        if n * item_bytes > len(self.buf) - self.pos:  # checked before any list of n items is built
            raise GeoPackageError(f"the geometry blob declares {n} items but holds only {len(self.buf) - self.pos} "
                                  "more bytes")
        return n

    def header(self) -> tuple[str, int, int]:
        """(endian, base type 1..7, coordinate dimensions) of the geometry starting here."""
        (order,) = self._unpack("B")
        if order not in (0, 1):
            raise GeoPackageError(f"invalid WKB byte order {order}")
        endian = "<" if order == 1 else ">"
        (raw_type,) = self._unpack(endian + "I")
        ndims = 2 + bool(raw_type & 0x80000000) + bool(raw_type & 0x40000000)  # EWKB Z and M flags
        iso_dim, base = divmod(raw_type & 0x0FFFFFFF, 1000)
        if iso_dim > 3 or base not in _BASE_TYPES:
            raise GeoPackageError(f"unsupported WKB geometry type {raw_type}")
        return endian, base, ndims + (0, 1, 1, 2)[iso_dim]

    def geometry(self) -> dict:
        """A Polygon or MultiPolygon as a GeoJSON-like mapping (other types are refused)."""
        endian, base, ndims = self.header()
        if base == 3:
            return {"type": "Polygon", "coordinates": self._polygon(endian, ndims)}
        if base == 6:
            polys = []
            for _ in range(self._count(endian, 9)):
                sub_endian, sub_base, sub_dims = self.header()
                if sub_base != 3:
                    raise GeoPackageError(f"a MultiPolygon holds a WKB {_BASE_TYPES[sub_base]}")
                polys.append(self._polygon(sub_endian, sub_dims))
            return {"type": "MultiPolygon", "coordinates": polys}
        raise GeoPackageError(f"unsupported geometry type {_BASE_TYPES[base]} (expected polygons)")

    def _points(self, endian: str, ndims: int) -> list[tuple[float, float]]:
        n = self._count(endian, 8 * ndims)
        flat = self._unpack(f"{endian}{n * ndims}d")
        return [(flat[i], flat[i + 1]) for i in range(0, len(flat), ndims)]

    def _polygon(self, endian: str, ndims: int) -> list:
        rings = [self._points(endian, ndims) for _ in range(self._count(endian, 4))]
        if any(not (math.isfinite(x) and math.isfinite(y)) for ring in rings for x, y in ring):
            raise GeoPackageError("the polygon has non-finite (NaN or infinite) coordinates")
        return rings

    def envelope(self, depth: int = 0) -> list[float] | None:
        """[minx, maxx, miny, maxy] of any WKB geometry (None when it has no coordinates)."""
        if depth > MAX_NESTING:
            raise GeoPackageError("the geometry is nested too deeply")
        endian, base, ndims = self.header()
        if base == 1:
            pts = [self._unpack(f"{endian}{ndims}d")[:2]]
        elif base == 2:
            pts = self._points(endian, ndims)
        elif base == 3:
            pts = [p for _ in range(self._count(endian, 4)) for p in self._points(endian, ndims)]
        else:
            boxes = [self.envelope(depth + 1) for _ in range(self._count(endian, 9))]
            boxes = [b for b in boxes if b is not None]
            if not boxes:
                return None
            return [min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes),
                    max(b[3] for b in boxes)]
        pts = [p for p in pts if not (math.isnan(p[0]) or math.isnan(p[1]))]  # an empty point is NaN, NaN
        if not pts:
            return None
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return [min(xs), max(xs), min(ys), max(ys)]


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _blob_header(blob: bytes) -> tuple[int, int, int, int]:
    """(flags, srs_id, envelope kind, WKB offset) of a GeoPackage geometry blob, checked."""
    if len(blob) < 8 or blob[:2] != b"GP":
        raise GeoPackageError("the geometry blob does not start with the GeoPackage magic 'GP'")
    if blob[2] != 0:
        raise GeoPackageError(f"unsupported GeoPackage geometry blob version {blob[2]}")
    flags = blob[3]
    if flags & 0b0010_0000:
        raise GeoPackageError("extended GeoPackage geometry blobs are not supported")
    env_kind = (flags >> 1) & 0b111
    if env_kind not in _ENVELOPE_BYTES:
        raise GeoPackageError(f"invalid GeoPackage envelope indicator {env_kind}")
    (srs_id,) = struct.unpack_from("<i" if flags & 1 else ">i", blob, 4)
    offset = 8 + _ENVELOPE_BYTES[env_kind]
    if len(blob) < offset:
        raise GeoPackageError("the geometry blob is truncated")
    return flags, srs_id, env_kind, offset


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
    """Decode a GeoPackage geometry blob to a GeoJSON-like mapping (None for NULL/empty).

    Raises :class:`GeoPackageError` (and nothing else) for anything malformed.
    """
    if blob is None:
        return None
    blob = bytes(blob)
    flags, _, _, offset = _blob_header(blob)
    if flags & 0b0001_0000:  # empty geometry
        return None
    return _WkbReader(blob, offset).geometry()


def blob_envelope(blob: bytes | None) -> list[float] | None:
    """[minx, maxx, miny, maxy] of a geometry blob (from its envelope, else its WKB); None if NULL/empty."""
    if blob is None:
        return None
    blob = bytes(blob)
    flags, _, env_kind, offset = _blob_header(blob)
    if flags & 0b0001_0000:
        return None
    if env_kind:
        return list(struct.unpack_from("<dddd" if flags & 1 else ">dddd", blob, 8))
    return _WkbReader(blob, offset).envelope()


# --------------------------------------------------------------------------- SQL functions GDAL's triggers call


def _safe(fn):
    def wrapped(blob):
        try:
            return fn(blob)
        except GeoPackageError:
            return None

    return wrapped


def _is_empty(blob):
    if blob is None:
        return None
    blob = bytes(blob)
    flags = _blob_header(blob)[0]
    return 1 if flags & 0b0001_0000 or blob_envelope(blob) is None else 0


def _corner(i):
    def fn(blob):
        env = blob_envelope(blob)
        return None if env is None else env[i]

    return fn


def _geometry_type(blob):
    if blob is None:
        return None
    blob = bytes(blob)
    _, _, _, offset = _blob_header(blob)
    return _BASE_TYPES[_WkbReader(blob, offset).header()[1]].upper()


def _srid(blob):
    return None if blob is None else _blob_header(bytes(blob))[1]


def _is_assignable(expected, actual):
    if expected is None or actual is None:
        return 0
    e, a = str(expected).upper(), str(actual).upper()
    return int(e == a or e == "GEOMETRY" or (e == "MULTIPOLYGON" and a == "POLYGON"))


def register_functions(conn: sqlite3.Connection) -> None:
    """Give ``conn`` the SQL functions that GeoPackage triggers (GDAL's R-tree ones included) call."""
    fns = {"ST_IsEmpty": _is_empty, "ST_MinX": _corner(0), "ST_MaxX": _corner(1), "ST_MinY": _corner(2),
           "ST_MaxY": _corner(3), "ST_GeometryType": _geometry_type, "ST_SRID": _srid}
    for name, fn in fns.items():
        conn.create_function(name, 1, _safe(fn), deterministic=True)
    conn.create_function("GPKG_IsAssignable", 2, _is_assignable, deterministic=True)


# --------------------------------------------------------------------------- identifiers


def quote_identifier(name: str) -> str:
    """``name`` as an SQL identifier: double-quoted, inner quotes doubled; empty or NUL-containing names refused."""
    name = str(name)
    if not name or "\x00" in name:
        raise GeoPackageError(f"{name!r} cannot be a table or column name (it is empty or holds a NUL character)")
    return '"' + name.replace('"', '""') + '"'


def _check_identifier(name: str) -> str:
    quote_identifier(name)
    return name


def _sql(template: str, **identifiers: str | Sequence[str]) -> str:
    """Fill table and column names into an SQL template, each double-quoted (:func:`quote_identifier`).

    SQLite binds values but not identifiers, so names are spliced into the
    statement text, quoted so that any name is safe (a list becomes a
    comma-separated column list).  Values always go through ``?``.
    """
    quoted = {}
    for key, value in identifiers.items():
        names = [value] if isinstance(value, str) else list(value)
        quoted[key] = ", ".join(quote_identifier(n) for n in names)
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
CREATE TABLE IF NOT EXISTS gpkg_extensions (
  table_name TEXT, column_name TEXT, extension_name TEXT NOT NULL, definition TEXT NOT NULL,
  scope TEXT NOT NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name));
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


def open_connection(path: str | os.PathLike, *, readonly: bool = False, create: bool = False) -> sqlite3.Connection:
    """An SQLite connection with the busy timeout set while connecting and the GeoPackage SQL functions.

    Read-only connections open ``mode=ro`` unless a hot journal lies beside
    the file (a writer was killed): then ``mode=rw``, so SQLite rolls it back
    instead of failing with "attempt to write a readonly database".
    """
    p = Path(path)
    hot = any(p.with_name(p.name + s).exists() for s in ("-journal", "-wal"))
    mode = "rwc" if create else ("ro" if readonly and not hot else "rw")
    from urllib.request import pathname2url

    uri = f"file:{pathname2url(str(p.resolve()))}?mode={mode}"  # '#', '?' and '%' in a path are escaped
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)  # explicit BEGIN/COMMIT
    register_functions(conn)
    return conn


def connect(path: str | os.PathLike) -> sqlite3.Connection:
    """Open (creating if needed) a GeoPackage and make sure the core tables exist."""
    conn = open_connection(path, create=True)
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        (app_id,) = conn.execute("PRAGMA application_id").fetchone()
        if app_id == 0:
            conn.execute(f"PRAGMA application_id = {GPKG_APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {GPKG_USER_VERSION}")
        elif app_id != GPKG_APPLICATION_ID:
            raise GeoPackageError(f"{path} is an SQLite database but not a GeoPackage")
        conn.executescript(_BASE_SCHEMA)
        conn.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?,?,?,?,?,?)", _DEFAULT_SRS)
    except BaseException:
        conn.close()
        raise
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
    spatial_index: bool = True,
) -> int:
    """Create an empty feature table with ``fid``, ``geom``, typed attribute columns and an R-tree index.

    ``fields`` is a sequence of ``(name, type)`` with types from :data:`FIELD_TYPES`.
    ``unique`` names columns that get a UNIQUE constraint (used for uuid upserts).
    Returns the srs_id.  Raises :class:`GeoPackageError` if the layer exists.
    """
    quote_identifier(layer)
    exists = conn.execute("SELECT 1 FROM gpkg_contents WHERE table_name = ?", (layer,)).fetchone()
    if exists:
        raise GeoPackageError(f"layer {layer!r} already exists")
    cols = ["fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", f"geom {geometry_type.upper()}"]
    for name, ftype in fields:
        if ftype.upper() not in FIELD_TYPES:
            raise GeoPackageError(f"field {name!r}: type must be one of {FIELD_TYPES}, not {ftype!r}")
        cols.append(f"{quote_identifier(name)} {ftype.upper()}" + (" UNIQUE" if name in unique else ""))
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
    if spatial_index:
        create_spatial_index(conn, layer, "geom", "fid")
    return srs_id


# The spec's triggers (GeoPackage 1.3, F.3), the ones GDAL writes too.
_RTREE_TRIGGERS = (
    "CREATE TRIGGER {t_insert} AFTER INSERT ON {table} WHEN (NEW.{geom} NOT NULL AND NOT ST_IsEmpty(NEW.{geom})) "
    "BEGIN INSERT OR REPLACE INTO {rtree} VALUES (NEW.{pk}, ST_MinX(NEW.{geom}), ST_MaxX(NEW.{geom}), "
    "ST_MinY(NEW.{geom}), ST_MaxY(NEW.{geom})); END",
    "CREATE TRIGGER {t_update1} AFTER UPDATE OF {geom} ON {table} WHEN OLD.{pk} = NEW.{pk} AND "
    "(NEW.{geom} NOTNULL AND NOT ST_IsEmpty(NEW.{geom})) BEGIN INSERT OR REPLACE INTO {rtree} VALUES (NEW.{pk}, "
    "ST_MinX(NEW.{geom}), ST_MaxX(NEW.{geom}), ST_MinY(NEW.{geom}), ST_MaxY(NEW.{geom})); END",
    "CREATE TRIGGER {t_update2} AFTER UPDATE OF {geom} ON {table} WHEN OLD.{pk} = NEW.{pk} AND "
    "(NEW.{geom} ISNULL OR ST_IsEmpty(NEW.{geom})) BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk}; END",
    "CREATE TRIGGER {t_update3} AFTER UPDATE ON {table} WHEN OLD.{pk} != NEW.{pk} AND "
    "(NEW.{geom} NOTNULL AND NOT ST_IsEmpty(NEW.{geom})) BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk}; "
    "INSERT OR REPLACE INTO {rtree} VALUES (NEW.{pk}, ST_MinX(NEW.{geom}), ST_MaxX(NEW.{geom}), "
    "ST_MinY(NEW.{geom}), ST_MaxY(NEW.{geom})); END",
    "CREATE TRIGGER {t_update4} AFTER UPDATE ON {table} WHEN OLD.{pk} != NEW.{pk} AND "
    "(NEW.{geom} ISNULL OR ST_IsEmpty(NEW.{geom})) BEGIN DELETE FROM {rtree} WHERE id IN (OLD.{pk}, NEW.{pk}); END",
    "CREATE TRIGGER {t_delete} AFTER DELETE ON {table} WHEN OLD.{geom} NOT NULL "
    "BEGIN DELETE FROM {rtree} WHERE id = OLD.{pk}; END",
)


def create_spatial_index(conn: sqlite3.Connection, layer: str, geom_col: str = "geom", pk: str = "fid") -> bool:
    """Add the GeoPackage R-tree index of ``layer`` (filled from its rows) and its gpkg_extensions row.

    Returns False, with a warning, when this SQLite was built without the
    R-tree module (the file stays valid, only unindexed).
    """
    rtree = f"rtree_{layer}_{geom_col}"
    try:
        conn.execute(_sql("CREATE VIRTUAL TABLE {rtree} USING rtree(id, minx, maxx, miny, maxy)", rtree=rtree))
    except sqlite3.OperationalError as exc:
        if "rtree" not in str(exc):
            raise
        log.warning("this Python's SQLite has no R-tree module; %s is written without a spatial index", layer)
        return False
    names = {f"t_{k}": f"{rtree}_{k}" for k in ("insert", "update1", "update2", "update3", "update4", "delete")}
    for trigger in _RTREE_TRIGGERS:
        conn.execute(_sql(trigger, table=layer, geom=geom_col, pk=pk, rtree=rtree, **names))
    conn.execute(_sql("INSERT OR REPLACE INTO {rtree} SELECT {pk}, ST_MinX({geom}), ST_MaxX({geom}), ST_MinY({geom}), "
                      "ST_MaxY({geom}) FROM {table} WHERE {geom} NOT NULL AND NOT ST_IsEmpty({geom})",
                      rtree=rtree, pk=pk, geom=geom_col, table=layer))
    conn.execute("INSERT OR IGNORE INTO gpkg_extensions VALUES (?, ?, ?, ?, ?)", (layer, geom_col, *RTREE_EXTENSION))
    return True


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
    cols = layer_columns(conn, layer)
    n = 0
    for feat in features:
        geom = _as_multipolygon(feat.geometry) if multipolygon else feat.geometry
        unknown = set(feat.properties) - set(cols.fields)
        if unknown:
            raise GeoPackageError(f"layer {layer!r} has no field(s) {sorted(unknown)}")
        names = list(feat.properties)
        statement = _sql("INSERT INTO {layer} ({cols}) VALUES (", layer=layer, cols=[cols.geom, *names])
        conn.execute(
            statement + ", ".join("?" * (len(names) + 1)) + ")",
            [encode_geometry(geom, cols.srs_id)] + [_to_sql_value(feat.properties[c]) for c in names],
        )
        n += 1
    _update_extent(conn, layer)
    return n


def _update_extent(conn: sqlite3.Connection, layer: str) -> None:
    geom_col = layer_columns(conn, layer).geom
    minx = miny = float("inf")
    maxx = maxy = float("-inf")
    for (blob,) in conn.execute(_sql("SELECT {g} FROM {layer} WHERE {g} IS NOT NULL", g=geom_col, layer=layer)):
        try:
            env = blob_envelope(blob)
        except GeoPackageError:
            continue  # a malformed row of another program does not stop an export; it has no extent
        if env is None:
            continue
        x0, x1, y0, y1 = env
        minx, miny, maxx, maxy = min(minx, x0), min(miny, y0), max(maxx, x1), max(maxy, y1)
    if minx <= maxx:
        conn.execute(
            "UPDATE gpkg_contents SET min_x=?, min_y=?, max_x=?, max_y=?, "
            "last_change=strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE table_name=?",
            (minx, miny, maxx, maxy, layer),
        )


@dataclass
class LayerColumns:
    """The columns of a feature table: its srs, geometry column, primary key and attribute fields."""

    srs_id: int
    geom: str
    pk: str
    fields: dict[str, str]  # name -> declared type (upper case)


def layer_columns(conn: sqlite3.Connection, layer: str) -> LayerColumns:
    """What a feature table holds, whichever program wrote it (GDAL may name the columns differently)."""
    row = conn.execute(
        "SELECT srs_id, column_name FROM gpkg_geometry_columns WHERE table_name = ?", (layer,)
    ).fetchone()
    if row is None:
        raise GeoPackageError(f"no feature layer named {layer!r}")
    srs_id, geom_col = row
    info = list(conn.execute(_sql("PRAGMA table_info({layer})", layer=layer)))
    pk = next((r[1] for r in info if r[5]), "rowid")
    fields = {r[1]: (r[2] or "").upper() for r in info if r[1] not in (pk, geom_col)}
    return LayerColumns(srs_id, geom_col, pk, fields)


def _layer_info(conn: sqlite3.Connection, layer: str) -> tuple[int, dict[str, str]]:
    cols = layer_columns(conn, layer)
    return cols.srs_id, cols.fields


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
        conn = open_connection(path, readonly=True)
    except sqlite3.Error as exc:
        raise GeoPackageError(f"{path} is not a readable GeoPackage ({exc})") from None
    try:
        conn.execute("SELECT 1 FROM gpkg_contents LIMIT 1")
    except sqlite3.Error as exc:
        conn.close()
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
    """Yield the features of ``layer`` on an open connection; a malformed geometry names its feature."""
    cols = layer_columns(conn, layer)
    names = list(cols.fields)
    query = _sql("SELECT {cols} FROM {layer} ORDER BY {pk}", cols=[cols.pk, cols.geom, *names], layer=layer,
                 pk=cols.pk)
    for row in conn.execute(query):
        try:
            geometry = decode_geometry(row[1]) if isinstance(row[1], (bytes, memoryview)) or row[1] is None \
                else _not_a_blob(row[1])
        except GeoPackageError as exc:
            raise GeoPackageError(f"feature {row[0]} of layer {layer!r} has a malformed geometry ({exc}); fix or "
                                  "delete it in QGIS") from None
        yield Feature(geometry=geometry, properties=dict(zip(names, row[2:])), fid=row[0])


def _not_a_blob(value):
    raise GeoPackageError(f"the geometry column holds a {type(value).__name__}, not a geometry blob")


def read_features(path: str | os.PathLike, layer: str | None = None) -> tuple[list[Feature], str | None]:
    """Read all features of one layer (the first one if ``layer`` is None).

    Returns ``(features, crs)`` where ``crs`` is ``"EPSG:n"`` or a WKT string
    (None if the layer declares no CRS).  Any problem is a :class:`GeoPackageError`
    whose message names the file.
    """
    _require_file(path)
    with contextlib.closing(_open_readonly(path)) as conn:
        try:
            layers = [r[0] for r in conn.execute("SELECT table_name FROM gpkg_geometry_columns ORDER BY rowid")]
            if not layers:
                raise GeoPackageError(f"{path} holds no feature layer")
            if layer is None:
                layer = layers[0]
            elif layer not in layers:
                raise GeoPackageError(f"{path} has no layer {layer!r}; it has {', '.join(layers)}")
            srs_id = layer_columns(conn, layer).srs_id
            return list(iter_features(conn, layer)), read_crs_wkt(conn, srs_id)
        except GeoPackageError as exc:
            text = str(exc)
            raise GeoPackageError(text if str(path) in text else f"{path}: {text}") from None
        except sqlite3.Error as exc:
            raise GeoPackageError(f"{path} is not a readable GeoPackage ({exc})") from None


def _timestamp(text: str) -> str:
    """``last_change`` text as the spec wants it: ``YYYY-MM-DDTHH:MM:SS.SSSZ`` (Requirement 15)."""
    t = _dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    t = t.astimezone(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


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
                    conn.execute("UPDATE gpkg_contents SET last_change = ? WHERE table_name = ?",
                                 (_timestamp(timestamp), name))
            conn.execute("COMMIT")
        finally:
            conn.close()
        os.replace(tmp, final)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return final
