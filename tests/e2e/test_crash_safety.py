"""Crash tests: kill -9 and SIGTERM at several points of a detection run and of an inventory export.

A child process runs the real command line (or export) with a pause injected at one point; the test
sends the signal while it waits there.  Then: no visible partial output (the previous run's files are
byte-identical, or the folder holds a journal that readers do not trust), the next run succeeds and says
it removed the leftovers, the inventory opens with every committed row.  ``CRASH_REPEATS`` (default 1)
repeats every point and signal; the closing note of issue 14 reports a run with CRASH_REPEATS=10.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from landslide_sar_plugin import cli
from landslide_sar_plugin.core import staging
from landslide_sar_plugin.core.inventory import export_reviewed, inventory_counts, read_inventory
from tests.unit.test_bad_inputs import write_dem, write_scenes
from tests.unit.test_gpkg_interop import candidates_file

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]
ROOT = Path(__file__).resolve().parents[2]
REPEATS = int(os.environ.get("CRASH_REPEATS", "1"))

HOOKS = r"""
import os, sys, time
point, sleep = os.environ["CRASH_POINT"], float(os.environ.get("CRASH_SLEEP", "60"))
from landslide_sar_plugin.core import staging

def pause(tag):
    print("AT", tag, flush=True)
    time.sleep(sleep)

def after(owner, name, tag, nth=1):
    orig, calls = getattr(owner, name), [0]
    def wrapped(*a, **k):
        out = orig(*a, **k)
        calls[0] += 1
        if calls[0] == nth:
            pause(tag)
        return out
    setattr(owner, name, wrapped)

if point == "blocks":
    after(staging.StagedRaster, "write", point, nth=3)
elif point == "cog":
    after(staging.StagedRaster, "to_cog", point, nth=2)
elif point == "finalize":
    from landslide_sar_plugin.core import preview
    after(preview, "render_preview", point)
elif point == "publish":  # between two renames of the swap (SIGTERM is deferred until it is done)
    import os as _os
    orig_replace, seen = _os.replace, [0]
    def replace(a, b):
        orig_replace(a, b)
        if staging._critical_depth() > 0:
            seen[0] += 1
            if seen[0] == 4:
                pause(point)
    _os.replace = replace
elif point == "published":
    after(staging, "publish", point)
elif point.startswith("export"):
    from landslide_sar_plugin.core import gpkg, inventory
    if point == "export-transaction":
        after(gpkg, "insert_features", point)
    elif point == "export-create":
        after(inventory, "_add_inventory_layer", point)
    else:
        after(inventory, "_export_transaction", point)
    inventory.export_reviewed(sys.argv[1], sys.argv[2], reviewer="killed")
    sys.exit(0)
from landslide_sar_plugin import cli
sys.exit(cli.main(sys.argv[1:]))
"""

RUN_POINTS = ["blocks", "cog", "finalize", "publish", "published"]
EXPORT_POINTS = ["export-create", "export-transaction", "export-committed"]
SIGNALS = {"kill -9": signal.SIGKILL, "SIGTERM": signal.SIGTERM}


def snapshot(folder: Path, *, visible_only=False) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))
            if not (visible_only and any(part.startswith(".") for part in p.relative_to(folder).parts))}


def run_child(args, point, sig, *, sleep=60.0):
    env = {**os.environ, "CRASH_POINT": point, "CRASH_SLEEP": str(sleep), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", HOOKS, *map(str, args)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    while line and not line.startswith("AT "):
        line = proc.stdout.readline()
    assert line.startswith(f"AT {point}"), proc.communicate()[1][-2000:]
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash_inputs")
    write_scenes(root / "scenes")
    write_dem(root / "dem.tif")
    return root


def detect_args(inputs: Path, out: Path, *extra):
    return ["detect", "--scenes", inputs / "scenes", "--dem", inputs / "dem.tif", "--out", out, "--event",
            "2018-09-06T03:00Z", "--threshold", "2", "--speckle-sigma", "0", "--block-size", "64", *extra]


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("sig_name", list(SIGNALS))
@pytest.mark.parametrize("point", RUN_POINTS)
def test_a_killed_run_leaves_the_previous_run_or_a_complete_one(inputs, tmp_path, point, sig_name, repeat, capsys):
    out = tmp_path / "out"
    truth = tmp_path / "truth_mask.tif"
    assert cli.main([str(a) for a in detect_args(inputs, out, "--preview")]) == 0
    (out / "exceedance.tif").rename(truth)  # a 0/1 raster to evaluate against; it stays outside the run folder
    assert cli.main([str(a) for a in detect_args(inputs, out, "--preview", "--truth", truth)]) == 0
    earlier = snapshot(out, visible_only=True)
    assert "evaluation.json" in earlier and "preview.png" in earlier
    capsys.readouterr()

    # The crashing run: a different threshold, no --truth (so its outputs differ and evaluation.json is stale).
    code, err = run_child(detect_args(inputs, out, "--threshold", "3", "--preview"), point, SIGNALS[sig_name],
                          sleep=3.0 if point == "publish" else 60.0)
    visible = snapshot(out, visible_only=True)
    committed = point == "published" or (point == "publish" and sig_name == "SIGTERM")
    manifest = staging.read_manifest(out)
    if committed:  # the swap was complete before the signal took effect
        assert set(visible) == set(manifest["entries"]) and "evaluation.json" not in visible
        assert json.loads((out / "run.json").read_text())["threshold_db"] == 3.0
    elif point == "publish":  # kill -9 between two renames: readers see no complete run until the next one
        assert manifest is None and (out / staging.JOURNAL_NAME).exists()
    else:
        assert visible == earlier, "the previous run changed"
    if sig_name == "SIGTERM":
        assert code == 143 and "terminated; no partial output was kept" in err and "Traceback" not in err
        assert not list(out.glob(".partial-*")) and not (out / staging.JOURNAL_NAME).exists()
    else:
        assert code == -signal.SIGKILL

    # The next run succeeds, says what it cleaned, and leaves exactly one complete run.
    assert cli.main([str(a) for a in detect_args(inputs, out, "--threshold", "2.5")]) == 0
    err = capsys.readouterr().err
    left_staging = sig_name == "kill -9" and point in ("blocks", "cog", "finalize")
    if left_staging:
        assert "removed 1 leftover(s) of earlier runs that did not finish" in err
    if sig_name == "kill -9" and point == "publish":
        assert "was killed while its files were being published" in err
    final = staging.read_manifest(out)
    assert set(snapshot(out, visible_only=True)) == set(final["entries"])
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [staging.MANIFEST_NAME]
    assert "evaluation.json" not in final["entries"] and "preview.png" not in final["entries"]  # stale ones gone
    assert json.loads((out / "run.json").read_text())["threshold_db"] == 2.5


@pytest.mark.parametrize("repeat", range(REPEATS))
@pytest.mark.parametrize("sig_name", list(SIGNALS))
@pytest.mark.parametrize("point", EXPORT_POINTS)
def test_a_killed_export_keeps_every_committed_row(tmp_path, point, sig_name, repeat):
    inv = tmp_path / "inventory.gpkg"
    if point != "export-create":
        export_reviewed(candidates_file(tmp_path / "r0" / "candidates.gpkg", 5), inv, reviewer="a")
    big = candidates_file(tmp_path / "r1" / "candidates.gpkg", 200, start=100)
    code, _ = run_child([big, inv], point, SIGNALS[sig_name])
    assert code in (-signal.SIGKILL, -signal.SIGTERM)
    visible = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    expected_rows = {"export-create": 0, "export-transaction": 5, "export-committed": 205}[point]
    if point == "export-create":
        assert "inventory.gpkg" not in visible  # never a half-made inventory under its name
    else:
        assert inventory_counts(inv)["total"] == expected_rows  # opens (hot journal rolled back), keeps every row
        assert len(read_inventory(inv)[0]) == expected_rows
    summary = export_reviewed(big, inv, reviewer="b")  # the next export succeeds and is complete
    assert summary.added == 200 - (200 if point == "export-committed" else 0)
    assert inventory_counts(inv)["total"] == expected_rows + summary.added
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name], "a dead creation's temporary file stayed"
