"""The bad-input matrix: every class of wrong input gives one sentence, exit code 1, and an untouched output folder.

Each case builds its inputs (small hand-made scenes, a DEM, AOI files, ONNX models with broken metadata...),
runs the command line as a user would, and asserts: exit code 1; exactly one ``error:`` line holding the
expected words (and no traceback, no "unexpected ... this is a bug"); the output folder, which already holds
a complete earlier run, byte-identical afterwards (nothing published, nothing left behind).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_sar_plugin import cli
from landslide_sar_plugin.core import gpkg, staging

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tests.unit.test_model import IR_VERSION, OPSET, make_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CRS = "EPSG:32654"
X0, Y0, PX, N = 500000.0, 4700000.0, 10.0, 64
EVENT = dt.datetime(2018, 9, 6, 3, 0, tzinfo=dt.timezone.utc)
SQUARE = (slice(20, 30), slice(30, 40))


# ----------------------------------------------------------------------------- inputs


def write_scenes(folder: Path, *, units="dB", dtype="float32", crs=CRS, tags=None, transform_data=None) -> Path:
    """3 pre + 2 post scenes per pass, VV+VH; VH drops 4 dB in SQUARE after the event."""
    folder.mkdir(parents=True, exist_ok=True)
    base = np.full((N, N), -15.0, np.float32)
    k = 0
    for orbit_pass, hour, rel in (("ASCENDING", 8, "68"), ("DESCENDING", 20, "46")):
        dates = [EVENT - dt.timedelta(days=12 * (i + 1), hours=3 - hour) for i in range(3)]
        dates += [EVENT + dt.timedelta(days=12 * i + 2, hours=hour) for i in range(2)]
        for j, when in enumerate(dates):
            vh = base.copy()
            if j >= 3:
                vh[SQUARE] = -19.0
            data = np.stack([vh + 6.0, vh])
            if transform_data is not None:
                data = transform_data(data)
            profile = {"driver": "GTiff", "width": N, "height": N, "count": 2, "dtype": dtype,
                       "transform": from_origin(X0, Y0, PX, PX)}
            if crs is not None:
                profile["crs"] = crs
            with rasterio.open(folder / f"scene_{k:02d}.tif", "w", **profile) as dst:
                dst.write(data.astype(dtype))
                dst.descriptions = ("VV", "VH")
                t = {"ACQUISITION_START": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "ORBIT_PASS": orbit_pass,
                     "RELATIVE_ORBIT": rel, "UNITS": units}
                t.update(tags or {})
                dst.update_tags(**{key: v for key, v in t.items() if v is not None})
            k += 1
    return folder


def write_dem(path: Path, size=N, crs=CRS, units=None, tags=None) -> Path:
    z = 1000.0 - np.tan(np.radians(30.0)) * (np.arange(size) * PX)[np.newaxis, :].repeat(size, 0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "float32",
               "transform": from_origin(X0, Y0, PX, PX)}
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z.astype("float32"), 1)
        if units:
            dst.units = (units,)
        if tags:
            dst.update_tags(**tags)
    return path


def geojson(path: Path, coordinates, crs=CRS, kind="Polygon") -> Path:
    path.write_text(json.dumps({"type": kind, "coordinates": coordinates,
                                "crs": {"type": "name", "properties": {"name": crs}}}), encoding="utf-8")
    return path


def model_file(path: Path, *, props=None, input_type=TensorProto.FLOAT, out_channels=1, sigmoid=True,
               bias=-4.0) -> Path:
    """A BA_S change detector (as test_inference's), with metadata or graph details broken on purpose."""
    info = make_info(composite="BA_S", tile_size=64, tile_overlap=16, threshold=0.5, model_name="change-detector",
                     normalisation={"kind": "standard", "mean": [-10.0, -10.0, 20.0], "std": [1.0, 1.0, 10.0]})
    w = np.zeros((out_channels, 3, 3, 3), np.float32)
    w[:, 0], w[:, 1] = 2.0 / 9, -2.0 / 9
    x = helper.make_tensor_value_info("input", input_type, ["batch", 3, "rows", "cols"])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_channels, "rows", "cols"])
    nodes, src = [], "input"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["input"], ["xf"], to=TensorProto.FLOAT))
        src = "xf"
    nodes.append(helper.make_node("Conv", [src, "W", "B"], ["z" if sigmoid else "output"], kernel_shape=[3, 3],
                                  pads=[1] * 4))
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["z"], ["output"]))
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(np.full(out_channels, bias, np.float32), "B")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    from landslide_sar_plugin.core.model import metadata_props

    meta = metadata_props(info)
    meta.update(props or {})
    helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def broken_blob_gpkg(path: Path, layer="aoi") -> Path:
    poly = {"type": "Polygon", "coordinates": [[(X0, Y0 - 600), (X0 + 600, Y0 - 600), (X0 + 600, Y0), (X0, Y0 - 600)]]}
    gpkg.write_features(path, layer, [gpkg.Feature(poly, {})], crs=CRS, fields=[])
    with sqlite3.connect(path) as conn:
        gpkg.register_functions(conn)
        blob = bytearray(gpkg.encode_geometry(poly, 32654))
        blob[45:49] = struct.pack("<I", 2**32 - 1)  # the MemoryError of the audit: 4 billion polygons declared
        conn.execute(f'UPDATE "{layer}" SET geom = ?', (bytes(blob),))
    return path


# ----------------------------------------------------------------------------- the harness


class Ctx:
    """Per-case inputs: fresh copies of the good ones, and the arguments of a good detect run."""

    def __init__(self, tmp: Path, base: Path):
        self.tmp, self.base = tmp, base
        self.scenes = tmp / "scenes"
        shutil.copytree(base / "scenes", self.scenes)
        self.dem = shutil.copy(base / "dem.tif", tmp / "dem.tif")
        self.out = tmp / "out"
        shutil.copytree(base / "earlier_run", self.out)  # a complete run of ours: it must survive untouched
        self.command = "detect"

    def args(self, *extra, scenes=None, dem=None, threshold=True):
        a = ["--scenes", scenes or self.scenes, "--dem", dem or self.dem, "--out", self.out, "--event",
             "2018-09-06T03:00Z", "--speckle-sigma", "0", "--block-size", "64"]
        if threshold:
            a += ["--threshold", "2"]
        return [*a, *extra]

    def rescenes(self, **kw):
        shutil.rmtree(self.scenes)
        write_scenes(self.scenes, **kw)

    def model(self, **kw):
        return ["--method", "model", "--model", model_file(self.tmp / "m.onnx", **kw)]


def snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs_base")
    write_scenes(root / "scenes")
    write_dem(root / "dem.tif")
    code = cli.main(["detect", "--scenes", str(root / "scenes"), "--dem", str(root / "dem.tif"), "--out",
                     str(root / "earlier_run"), "--event", "2018-09-06T03:00Z", "--threshold", "2",
                     "--speckle-sigma", "0", "--preview"])
    assert code == 0
    return root


def _corrupt_tile(c: Ctx):
    """A scene whose tile over the AOI is damaged (the catalogue's sample windows miss it; the run reads it)."""
    big, tile = 512, 64
    path = c.scenes / "scene_00.tif"
    with rasterio.open(path) as src:
        tags, data = src.tags(), src.read()
    arr = np.full((2, big, big), -15.0, np.float32)
    arr[:, big - N:, big - N:] = data
    with rasterio.open(path, "w", driver="GTiff", width=big, height=big, count=2, dtype="float32", crs=CRS,
                       tiled=True, blockxsize=tile, blockysize=tile, compress="deflate",
                       transform=from_origin(X0 - (big - N) * PX, Y0 + (big - N) * PX, PX, PX)) as dst:
        dst.write(arr)
        dst.descriptions = ("VV", "VH")
        dst.update_tags(**tags)
    offsets, counts = _tile_offsets(path)
    with open(path, "r+b") as fh:  # the last tile (bottom right, over the DEM) becomes garbage
        fh.seek(offsets[-1])
        fh.write(b"\xff" * counts[-1])
    return c.args()


def _tile_offsets(path: Path) -> tuple[list[int], list[int]]:
    """TileOffsets and TileByteCounts of a little-endian classic TIFF's first image (tags 324, 325)."""
    buf = path.read_bytes()
    assert buf[:4] == b"II*\x00"
    (ifd,) = struct.unpack_from("<I", buf, 4)
    (n,) = struct.unpack_from("<H", buf, ifd)
    found = {}
    for k in range(n):
        tag, typ, count, value = struct.unpack_from("<HHII", buf, ifd + 2 + 12 * k)
        if tag in (324, 325):
            fmt = "<" + ("I" if typ == 4 else "Q" if typ == 16 else "H") * count
            found[tag] = list(struct.unpack_from(fmt, buf, value)) if count > 1 else [value]
    return found[324], found[325]


def _lock_held(c: Ctx):
    c.lock = staging._FolderLock(c.out)  # another run of ours is writing there right now
    return c.args()


def _foreign(c: Ctx):
    shutil.rmtree(c.out)
    c.out.mkdir()
    (c.out / "candidates.gpkg").write_bytes(b"the user's own file, not ours")
    return c.args()


def _evaluate(c: Ctx, pred, truth):
    c.command = "evaluate"
    return ["--pred", pred, "--truth", truth, "--json", c.out / "report.json"]


def _sidecar(c: Ctx, text, name="scenes.csv"):
    (c.scenes / name).write_text(text, encoding="utf-8")
    return c.args()


def _dem(c: Ctx, **kw):
    write_dem(c.tmp / "dem2.tif", **kw)
    return c.args(dem=c.tmp / "dem2.tif")


CASES = {
    # --- scenes
    "scenes without a CRS": (lambda c: (c.rescenes(crs=None), c.args())[1], "no coordinate reference system"),
    "one corrupt tile inside a scene": (_corrupt_tile, "cannot read scene_00.tif"),
    "scenes folder missing": (lambda c: c.args(scenes=c.tmp / "nope"), "does not exist"),
    "relative_orbit=inf in a tag": (lambda c: (c.rescenes(tags={"RELATIVE_ORBIT": "inf"}), c.args())[1],
                                    "RELATIVE_ORBIT tag 'inf'"),
    "relative_orbit=inf in the sidecar": (lambda c: _sidecar(c, "file,relative_orbit\nscene_00.tif,inf\n"),
                                          "scenes.csv, row scene_00.tif: relative_orbit 'inf'"),
    "scenes.json of the wrong shape": (lambda c: _sidecar(c, '{"scenes": {"file": "scene_00.tif"}}', "scenes.json"),
                                       "must hold a list of objects"),
    "scenes.json not JSON": (lambda c: _sidecar(c, "{file: scene_00.tif", "scenes.json"), "is not valid JSON"),
    "sidecar units not a unit": (lambda c: _sidecar(c, "file,units\nscene_00.tif,furlongs\n"), "'furlongs'"),
    "linear data tagged dB": (lambda c: (c.rescenes(transform_data=lambda d: 10 ** (d / 10)), c.args())[1],
                              "look like linear power"),
    "huge values tagged dB": (lambda c: (c.rescenes(transform_data=lambda d: d * 0 + 1e30), c.args())[1],
                              "not backscatter in dB"),
    "uint8 data tagged dB": (lambda c: (c.rescenes(dtype="uint8", transform_data=lambda d: d + 40), c.args())[1],
                             "8-bit integers"),
    "dB data called linear in the sidecar": (
        lambda c: _sidecar(c, "file,units\n" + "".join(f"scene_{k:02d}.tif,linear\n" for k in range(10))),
        "look like dB"),
    "no polarisation": (lambda c: (c.rescenes(), [shutil.copy(c.dem, c.scenes / f"scene_{k:02d}.tif")
                                                  for k in range(10)], c.args())[2], "no usable scene"),
    # --- DEM
    "DEM is not a raster": (lambda c: ((c.tmp / "d.tif").write_text("elevation: high"), c.args(dem=c.tmp / "d.tif"))[1],
                            "is not a raster GDAL can read"),
    "DEM tagged in feet (band unit)": (lambda c: _dem(c, units="ft"), "tagged in feet"),
    "DEM tagged in feet (tag)": (lambda c: _dem(c, tags={"UNITS": "US survey foot"}), "tagged in feet"),
    "DEM without a CRS": (lambda c: _dem(c, crs=None), "has no coordinate reference system"),
    "DEM missing": (lambda c: c.args(dem=c.tmp / "nope.tif"), "does not exist"),
    "DEM too small for the AOI": (lambda c: c.args("--aoi", f"{X0},{Y0 - 600},{X0 + 600},{Y0},{CRS}",
                                                   dem=_dem(c, size=20)[3]), "covers only"),
    # --- AOI
    "AOI with empty coordinates": (lambda c: c.args("--aoi", geojson(c.tmp / "a.geojson", [])),
                                   "polygon without coordinates"),
    "AOI ring of nothing": (lambda c: c.args("--aoi", geojson(c.tmp / "a.geojson", [[]])), "at least 4"),
    "AOI lat/lon swapped": (lambda c: c.args("--aoi", "42.6,141.9,42.8,142.1"), "look swapped"),
    "AOI self-intersecting": (lambda c: c.args("--aoi", geojson(c.tmp / "a.geojson", [[
        [X0, Y0], [X0 + 600, Y0 - 600], [X0 + 600, Y0], [X0, Y0 - 600], [X0, Y0]]])), "crosses itself"),
    "AOI of zero area (polygon)": (lambda c: c.args("--aoi", geojson(c.tmp / "a.geojson", [[
        [X0, Y0], [X0 + 300, Y0 - 300], [X0 + 600, Y0 - 600], [X0, Y0]]])), "zero area"),
    "AOI of zero area (box)": (lambda c: c.args("--aoi", f"{X0},{Y0 - 600},{X0},{Y0},{CRS}"), "zero area"),
    "AOI as a shapefile": (lambda c: ((c.tmp / "a.shp").write_bytes(b"\x00\x00\x27\x0a" + b"\x00" * 96),
                                      c.args("--aoi", c.tmp / "a.shp"))[1], "is a SHP file"),
    "AOI GeoPackage with a malformed geometry blob": (lambda c: c.args("--aoi", broken_blob_gpkg(c.tmp / "a.gpkg")),
                                                      "malformed geometry"),
    "AOI with an unknown CRS": (lambda c: c.args("--aoi", f"{X0},{Y0 - 600},{X0 + 600},{Y0},EPSG:999999"),
                                "is not a coordinate reference system"),
    "AOI outside every scene": (lambda c: c.args("--aoi", f"{X0 + 5e4},{Y0 - 600},{X0 + 5e4 + 600},{Y0},{CRS}"),
                                "outside every scene"),
    "AOI with NaN bounds": (lambda c: c.args("--aoi", "nan,42,143,43"), "finite numbers"),
    # --- parameters
    "--threshold nan": (lambda c: c.args("--threshold", "nan", threshold=False), "threshold-db must be a finite"),
    "--pixel-size nan": (lambda c: c.args("--pixel-size", "nan"), "pixel-size must be a finite"),
    "--percentile 100": (lambda c: c.args("--percentile", "100", threshold=False), "strictly between 0 and 100"),
    "--speckle-sigma inf": (lambda c: c.args()[:-2] + ["--speckle-sigma", "inf", "--block-size", "64"],
                            "speckle-sigma-m must be a finite"),
    "--block-size 8": (lambda c: c.args()[:-2] + ["--block-size", "8"], "at least 64 pixels"),
    "--crs geographic": (lambda c: c.args("--crs", "EPSG:4326", "--aoi", f"{X0},{Y0 - 600},{X0 + 600},{Y0},{CRS}"),
                         "is not projected"),
    "--event not a date": (lambda c: [*c.args()[:7], "yesterday", *c.args()[8:]], "not an ISO-8601 date"),
    "--pre-range past the event": (lambda c: c.args("--pre-range", "2018-06-01/2018-09-30"), "pre-event range ends"),
    "--water-mask not a raster": (lambda c: ((c.tmp / "w.tif").write_text("water"),
                                             c.args("--water-mask", c.tmp / "w.tif"))[1], "cannot read w.tif"),
    # --- model
    "model threshold NaN": (lambda c: c.args(*c.model(props={"threshold": "nan"})), "metadata threshold = 'nan'"),
    "model threshold 2.0": (lambda c: c.args(*c.model(props={"threshold": "2.0"})), "is outside (0, 1)"),
    "model pixel size NaN": (lambda c: c.args(*c.model(props={"pixel_size_m": "nan"})), "metadata pixel_size_m"),
    "model std 0": (lambda c: c.args(*c.model(props={"normalisation": json.dumps(
        {"kind": "standard", "mean": [-10, -10, 20], "std": [1, 0, 10]})})), "zero or negative spread"),
    "model normalisation not a dict": (lambda c: c.args(*c.model(props={"normalisation": "[1, 2]"})),
                                       "is not a JSON object"),
    "model band_names not a list": (lambda c: c.args(*c.model(props={"band_names": '"VV_pre"'})),
                                    "is not a JSON list"),
    "model tile_size 100000": (lambda c: c.args(*c.model(props={"tile_size": "100000"})), "tile_size = '100000'"),
    "model int64 input": (lambda c: c.args(*c.model(input_type=TensorProto.INT64)), "not tensor(float)"),
    "model two-channel output": (lambda c: c.args(*c.model(out_channels=2)), "outputs 2 channels"),
    "model logits without a sigmoid": (lambda c: c.args(*c.model(sigmoid=False, bias=3.0)), "without its sigmoid"),
    "model not ONNX": (lambda c: ((c.tmp / "m.onnx").write_bytes(b"\x08\x07garbage" * 20),
                                  c.args("--method", "model", "--model", c.tmp / "m.onnx"))[1],
                       "not a readable ONNX model"),
    "--model-threshold nan": (lambda c: c.args(*c.model(), "--model-threshold", "nan"),
                              "strictly between 0 and 1"),
    # --- truth and outputs
    "--truth unreadable": (lambda c: ((c.tmp / "t.tif").write_bytes(b"II*\x00" + b"\xff" * 300),
                                      c.args("--truth", c.tmp / "t.tif"))[1], "--truth file"),
    "--truth missing": (lambda c: c.args("--truth", c.tmp / "nope.gpkg"), "--truth file"),
    "--truth with a malformed geometry blob": (lambda c: c.args("--truth", broken_blob_gpkg(c.tmp / "t.gpkg")),
                                               "malformed geometry"),
    "--out holds a user's file of our name": (_foreign, "was not written by a run of this tool"),
    "--out is being written by another run": (_lock_held, "another run is writing into"),
    "--out is a file": (lambda c: ((c.tmp / "f").write_text("x"), c.args()[:5] + [c.tmp / "f" / "o"] + c.args()[6:])[1],
                        "cannot write to the output folder"),
    # --- evaluate
    "evaluate: prediction with a malformed blob": (lambda c: _evaluate(c, broken_blob_gpkg(c.tmp / "p.gpkg"),
                                                                       c.base / "earlier_run" / "exceedance.tif"),
                                                   "malformed geometry"),
    "evaluate: truth missing": (lambda c: _evaluate(c, c.base / "earlier_run" / "a_ratio.tif", c.tmp / "none.tif"),
                                "truth file"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_sentence_exit_1_and_the_output_folder_is_untouched(name, base, tmp_path, capsys):
    setup, fragment = CASES[name]
    ctx = Ctx(tmp_path, base)
    args = setup(ctx)
    before = snapshot(ctx.out)
    try:
        code = cli.main([ctx.command, *map(str, args)])
        after = snapshot(ctx.out)
    finally:
        if getattr(ctx, "lock", None) is not None:
            ctx.lock.release()
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1, err
    assert len(errors) == 1 and fragment in errors[0], err
    assert "Traceback" not in err and "this is a bug" not in err
    assert after == before, "the output folder changed"


def test_the_matrix_has_at_least_forty_classes():
    assert len(CASES) >= 40


DISK_FULL = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit, write() fails with EFBIG as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from landslide_sar_plugin import cli
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_full_disk_is_one_sentence_and_publishes_nothing(base, tmp_path):
    ctx = Ctx(tmp_path, base)
    big = tmp_path / "big_scenes"  # 512 x 512 scenes: their COG outputs do not fit under the size limit
    shutil.copytree(ctx.scenes, big)
    for k, p in enumerate(sorted(big.glob("*.tif"))):
        with rasterio.open(p) as src:
            tags, data = src.tags(), src.read()
        with rasterio.open(p, "w", driver="GTiff", width=512, height=512, count=2, dtype="float32", crs=CRS,
                           transform=from_origin(X0, Y0, PX, PX)) as dst:
            dst.write(np.tile(data, (1, 8, 8)) + np.random.default_rng(k).normal(0, 2, (2, 512, 512)))
            dst.descriptions = ("VV", "VH")
            dst.update_tags(**tags)
    write_dem(tmp_path / "big_dem.tif", size=512)
    before = snapshot(ctx.out)
    proc = subprocess.run([sys.executable, "-c", DISK_FULL, "detect",
                           *map(str, ctx.args(scenes=big, dem=tmp_path / "big_dem.tif"))],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, proc.stderr
    assert len(errors) == 1 and "the disk is full" in errors[0] and "Traceback" not in proc.stderr, proc.stderr
    assert snapshot(ctx.out) == before
