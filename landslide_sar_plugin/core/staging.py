"""Plumbing shared by every run that writes rasters: progress and cancel, staged outputs, publication.

How a run reaches its output folder ``OUT``
-------------------------------------------
A run is **complete or absent**, never a mix of two runs, and never overwrites
a file that is not ours:

1. **Lock.**  The run takes an exclusive lock on ``OUT/.landslide-sar.lock``
   (``flock``; ``msvcrt.locking`` on Windows).  A second run into the same
   folder is refused with a sentence; the lock dies with its process, so a
   killed run never blocks the next one.
2. **Recovery and leftovers.**  Holding the lock, the run first finishes or
   undoes an interrupted publication (see the journal below) and removes what
   dead runs left behind: staging folders ``.partial-run-*`` (and
   ``.partial-ee-*``, ``.partial-download-*``) and temporary files
   ``.*.partial-*``.  Each cleanup is logged in one line naming what was
   removed and how much space it freed.  Only names of these patterns are ever
   removed.
3. **Staging.**  Everything the run writes (rasters, written block by block,
   compressed once in their final layout and assembled into cloud-optimised
   GeoTIFFs by :mod:`.cog`; ``candidates.gpkg``,
   ``run.json``, ``preview.png``, ``evaluation.json``, sub-runs) goes into a
   hidden staging folder ``OUT/.partial-run-<8 random hex digits>`` on the same file system.
   A failure, a cancel, Ctrl+C or SIGTERM (:func:`signals_raise`) removes it.
4. **Publication** (:func:`publish`), once everything is staged:

   * the **manifest** ``OUT/.landslide-sar-manifest.json`` lists the entries
     (files or folders) of the run now in ``OUT``.  An existing ``OUT/NAME``
     that the new run would publish and that the manifest does not list is a
     user's file: the run is refused ("... was not written by this tool; move
     it or choose another output folder") before anything is computed (for
     the names in :data:`RESERVED_NAMES`) and again before anything is moved;
   * a **journal** ``OUT/.landslide-sar-publishing.json`` is written (and
     fsynced) naming the staging folder, the new entries and the entries of
     the previous run;
   * the old manifest, then every entry of the previous run, is moved into
     ``staging/.replaced/`` (so stale outputs of an earlier run, e.g. an
     ``evaluation.json`` that the new run does not write, never stay beside
     the new ones); then the new entries are renamed into ``OUT``,
     ``run.json`` last; then the new manifest is written: **that is the commit
     point**; then the journal and the staging folder (with the old entries)
     are removed;
   * any exception during these steps moves everything back (the previous
     run is restored).  A kill -9 between two renames leaves the journal; the
     next run into ``OUT`` (or :func:`recover`) sees it and, unless the new
     manifest was already written, removes the half-published entries and
     restores the previous run from ``.replaced/``, with a line saying so.

   Readers trust the manifest (:func:`read_manifest`): a folder without one,
   or with a journal, holds no complete run.  The rename loop is the only
   window where a kill leaves visible new files without their manifest; it is
   a handful of ``rename`` calls of one directory entry each.

Folders written by versions without a manifest are adopted when their
``run.json`` says ``"software": "landslide_sar_plugin"`` (its outputs, plus
``preview.png`` and ``evaluation.json``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from .cog import CogWriter
from .grid import Grid

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

# GDAL's block cache would otherwise grow to 5 % of RAM; memory is meant to follow the block size.  32 MB
# holds what is read again soon (a row of tiles for polygon tracing, partly written overview tiles): 256 MB
# ran no faster (A_ratio 8192^2, U-Net 2346 x 3842) and its filling made peak memory grow with the grid.
GDAL_CACHE_MB = 32
# rasterio hands an integer GDAL_CACHEMAX to GDALSetCacheMax64, in BYTES (GDAL's "< 100000 means MB" rule is
# for the configuration string only): ``GDAL_CACHEMAX=256`` left a 256-byte cache, every tile decoded again
# for each halo, scanline and partial write (polygon tracing 5.7x slower, measured).
GDAL_CACHE_BYTES = GDAL_CACHE_MB * 1024 * 1024

MANIFEST_NAME = ".landslide-sar-manifest.json"
JOURNAL_NAME = ".landslide-sar-publishing.json"
LOCK_NAME = ".landslide-sar.lock"
STAGING_PREFIX = ".partial-run-"
REPLACED_DIR = ".replaced"
MANIFEST_FORMAT = "landslide_sar_plugin output manifest"
# Names a run of this tool may publish: a user's file of one of these names in OUT stops a run before it starts.
RESERVED_NAMES = (
    "run.json", "candidates.gpkg", "candidates.json", "a_ratio.tif", "a_ratio_ascending.tif",
    "a_ratio_descending.tif", "counts.tif", "mask.tif", "exceedance.tif", "heatmap.tif", "probability.tif",
    "preview.png", "evaluation.json", "agreement.tif", "a_ratio", "model", "ee_inputs",
)
# What dead runs leave behind (only names of these shapes are ever removed by the cleanup).
_LEFTOVER_DIR = re.compile(r"^\.partial-(run|ee|download)-[0-9a-f]{8}$")
_LEFTOVER_FILE = re.compile(r"^\..+\.partial-[0-9a-f]{8}(\.[A-Za-z0-9-]+)*$|^\.write-test-[0-9a-f]{8}$")


class DetectionError(ValueError):
    """The inputs or parameters cannot give a result; the message says what to change."""


class Cancelled(Exception):
    """The user cancelled the run; no output was kept."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (see :func:`signals_raise`); cleanup runs as for Ctrl+C."""


class Progress:
    """Maps stage-local fractions onto one 0..1 bar and checks for cancel at every step."""

    def __init__(self, progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None):
        self._progress = progress
        self._is_cancelled = is_cancelled
        self._lo, self._hi = 0.0, 1.0

    def stage(self, lo: float, hi: float) -> None:
        self._lo, self._hi = lo, hi

    def __call__(self, fraction: float, message: str) -> None:
        if self._is_cancelled is not None and self._is_cancelled():
            raise Cancelled("cancelled by the user")
        if self._progress is not None:
            self._progress(self._lo + (self._hi - self._lo) * min(max(fraction, 0.0), 1.0), message)


# --------------------------------------------------------------------------- signals


_state = threading.local()


def _critical_depth() -> int:
    return getattr(_state, "critical", 0)


@contextlib.contextmanager
def _critical() -> Iterator[None]:
    """Defer SIGINT/SIGTERM (when :func:`signals_raise` is active) while the folder is being swapped."""
    _state.critical = _critical_depth() + 1
    try:
        yield
    finally:
        _state.critical -= 1
        pending = getattr(_state, "pending", None)
        if _state.critical == 0 and pending is not None:
            _state.pending = None
            raise Terminated("terminated") if pending == signal.SIGTERM else KeyboardInterrupt


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """In a command-line process: SIGTERM raises :class:`Terminated`, like Ctrl+C raises KeyboardInterrupt.

    Both unwind through the ``except``/``finally`` blocks that remove staging
    folders, so ``kill PID`` cleans up exactly like Ctrl+C.  During the few
    renames of a publication both are deferred until the swap is complete or
    rolled back.  Only the main thread can install handlers; elsewhere (a
    QGIS worker thread) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        if _critical_depth() > 0:
            _state.pending = signum
            return
        raise Terminated("terminated") if signum == signal.SIGTERM else KeyboardInterrupt

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --------------------------------------------------------------------------- the folder lock


class _FolderLock:
    """An exclusive, non-blocking lock on ``OUT/.landslide-sar.lock``, released by the OS if the process dies.

    The lock file is removed again on release, so a finished run leaves no trace
    of it; a lock taken on a file that another process has just unlinked is
    detected (its inode no longer matches the path) and taken again.
    """

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_NAME
        for _ in range(50):
            self.fh = open(self.path, "a+b")  # noqa: SIM115 (held for the lifetime of the lock)
            try:
                self._lock()
            except BlockingIOError:
                self.fh.close()
                raise DetectionError(f"another run is writing into {out_dir} right now; wait for it to finish "
                                     "or choose another output folder") from None
            except OSError as exc:  # a file system without locks (some network shares): go on unlocked
                log.debug("no lock on %s (%s); continuing without one", self.path, exc)
                return
            if self._still_linked():
                return
            self.fh.close()  # the holder before us removed the file after we opened it: lock the new one
        raise DetectionError(f"cannot lock the output folder {out_dir}; choose another output folder")

    def _still_linked(self) -> bool:
        try:
            return os.path.samestat(os.fstat(self.fh.fileno()), os.stat(self.path))
        except OSError:
            return False

    def _lock(self) -> None:
        if os.name == "nt":
            import msvcrt

            self.fh.seek(0)
            try:
                msvcrt.locking(self.fh.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EDEADLK):
                    raise BlockingIOError from None
                raise
        else:
            import fcntl

            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self.fh.closed:
            return
        if os.name != "nt":  # POSIX: unlink while still locked, then unlock by closing
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.fh.close()
        else:  # Windows cannot unlink an open file
            self.fh.close()
            with contextlib.suppress(OSError):
                self.path.unlink()


class _Hold:
    """The lock of an output folder while one staging folder in it is alive."""

    def __init__(self, out_dir: Path, created: bool):
        self.out_dir = out_dir
        self.created = created  # the run created the output folder: a failed run removes it again if empty
        self.lock = _FolderLock(out_dir)


_holds: dict[Path, _Hold] = {}  # staging folder -> the hold on its output folder
_holds_guard = threading.Lock()


def _acquire(out_dir: Path, staging: Path, created: bool = False) -> None:
    hold = _Hold(out_dir, created)
    with _holds_guard:
        _holds[staging] = hold


def _release(staging: Path, *, remove_created: bool = False) -> None:
    with _holds_guard:
        hold = _holds.pop(staging, None)
    if hold is None:
        return
    hold.lock.release()
    if remove_created and hold.created:
        with contextlib.suppress(OSError):
            hold.out_dir.rmdir()  # only succeeds when the failed run left the folder empty


# --------------------------------------------------------------------------- folder set-up and cleanup


def check_writable(out_dir: Path) -> None:
    """Create ``out_dir`` if needed and prove a file can be written there."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write-test-{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DetectionError(f"cannot write to the output folder {out_dir}: {exc.strerror or exc}; "
                             "choose another output folder") from None


def new_staging(out_dir: Path) -> Path:
    """Lock ``out_dir``, recover it, remove dead runs' leftovers, and create a fresh staging folder in it.

    The lock is held until :func:`publish` or :func:`discard` of the returned folder.
    """
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    check_writable(out_dir)
    staging = out_dir / f"{STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
    _acquire(out_dir, staging, created)
    try:
        recover(out_dir)
        remove_leftovers(out_dir)
        staging.mkdir()
    except BaseException:
        _release(staging, remove_created=True)
        raise
    return staging


def discard(staging: Path) -> None:
    """Remove a staging folder (a failed or cancelled run) and release its output folder's lock."""
    shutil.rmtree(staging, ignore_errors=True)
    _release(Path(staging), remove_created=True)


def _size_of(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    with contextlib.suppress(OSError):
        return path.stat().st_size
    return 0


def remove_leftovers(out_dir: Path) -> list[str]:
    """Remove staging folders and temporary files of dead runs (the caller holds the folder lock).

    Returns the names removed; logs one line saying what and how much.
    """
    removed, freed = [], 0
    for entry in sorted(Path(out_dir).iterdir()):
        pattern = _LEFTOVER_DIR if entry.is_dir() and not entry.is_symlink() else _LEFTOVER_FILE
        if not pattern.match(entry.name):
            continue
        freed += _size_of(entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry.name)
    if removed:
        log.warning("removed %d leftover(s) of earlier runs that did not finish in %s (%.1f MB): %s",
                    len(removed), out_dir, freed / 1e6, ", ".join(removed))
    return removed


# --------------------------------------------------------------------------- manifest and journal


def _write_synced(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The manifest of the complete run in ``out_dir``, or None (no run, or a publication in progress).

    ``entries`` maps each published name to ``{"kind": "file"|"dir", "key": ...}``.
    A folder written before manifests existed is adopted from its ``run.json``
    (``"legacy": True``).
    """
    out = Path(out_dir)
    if (out / JOURNAL_NAME).exists():
        return None
    data = _read_json(out / MANIFEST_NAME)
    if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT and isinstance(data.get("entries"), dict):
        return data
    return _legacy_manifest(out)


def _ours(run_json: Path) -> dict | None:
    info = _read_json(run_json)
    return info if isinstance(info, dict) and info.get("software") == "landslide_sar_plugin" else None


def _legacy_manifest(out: Path) -> dict | None:
    names: set[str] = set()
    info = _ours(out / "run.json")
    if info is not None:
        names |= {"run.json", "preview.png", "evaluation.json"}
        names |= {str(v) for v in (info.get("outputs") or {}).values() if isinstance(v, str)}
        if (info.get("inputs") or {}).get("earthengine_inputs"):
            names.add("ee_inputs")
    for sub in ("a_ratio", "model"):
        if _ours(out / sub / "run.json") is not None:
            names |= {sub, "agreement.tif"}
    names = {n for n in names if "/" not in n and "\\" not in n and (out / n).exists()}
    if not names:
        return None
    return {"format": MANIFEST_FORMAT, "legacy": True, "run_id": None,
            "entries": {n: {"kind": "dir" if (out / n).is_dir() else "file", "key": None} for n in sorted(names)}}


def check_not_foreign(out_dir: Path, names: Iterable[str], manifest: dict | None = None) -> None:
    """Refuse when ``out_dir`` holds a file of one of ``names`` that no run of ours published."""
    out = Path(out_dir)
    ours = set((manifest if manifest is not None else read_manifest(out) or {}).get("entries", {}))
    for name in names:
        target = out / name
        if (target.exists() or target.is_symlink()) and name not in ours and not _run_folder(target):
            raise DetectionError(f"{target} already exists and was not written by a run of this tool; move it "
                                 "away or choose another output folder (existing files are never overwritten)")


def _run_folder(path: Path) -> bool:
    """A sub-folder holding a complete run of ours (the dock's ``a_ratio/`` and ``model/``) is ours too."""
    return path.is_dir() and not path.is_symlink() and read_manifest(path) is not None


def _move(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _roll_back(out: Path, staging: Path, new: Iterable[str], old: Iterable[str]) -> None:
    """Undo a publication: remove what was moved in, put the previous run back (idempotent)."""
    replaced = staging / REPLACED_DIR
    for name in new:
        if (out / name).exists() and not (staging / name).exists():
            if name in old and not (replaced / name).exists():
                continue  # the previous run's entry was never moved aside: it is still the old one
            _move(out / name, staging / name)
    for name in [*old, MANIFEST_NAME]:
        if (replaced / name).exists() and not (out / name).exists():
            _move(replaced / name, out / name)


def recover(out_dir: str | os.PathLike) -> str | None:
    """Finish or undo a publication that a killed process left half done (the caller holds the lock).

    Returns the line that was logged, or None when there was nothing to do.
    """
    out = Path(out_dir)
    journal = _read_json(out / JOURNAL_NAME)
    if journal is None:
        if (out / JOURNAL_NAME).exists():
            (out / JOURNAL_NAME).unlink()
        return None
    staging = out / str(journal.get("staging", ""))
    manifest = _read_json(out / MANIFEST_NAME)
    if isinstance(manifest, dict) and manifest.get("run_id") == journal.get("run_id"):
        line = f"a run into {out} was killed just after it was published; removed its leftovers"
    else:
        if _LEFTOVER_DIR.match(staging.name) and staging.is_dir():
            _roll_back(out, staging, journal.get("new", []), journal.get("old", []))
        line = (f"a run into {out} was killed while its files were being published; removed its partial files "
                "and restored the previous run's")
    if _LEFTOVER_DIR.match(staging.name):
        shutil.rmtree(staging, ignore_errors=True)
    (out / JOURNAL_NAME).unlink()
    log.warning("%s", line)
    return line


def publish(staging: Path, out_dir: Path, files: Mapping[str, Path], *, replace: bool = True,
            adopt: Iterable[str] = ()) -> dict[str, Path]:
    """Publish ``files`` (keys -> paths inside ``staging``, files or folders) into ``out_dir`` as one run.

    ``replace=True`` (a run): every entry of the previous run that the new one
    does not rewrite is removed.  ``replace=False`` (an addition to a run, e.g.
    the dock's updated polygons or ``agreement.tif``): the previous entries
    stay and the new ones join them.  ``adopt`` names entries already in
    ``out_dir`` (written by this run before it was staged, e.g. Earth Engine
    downloads) that become part of it.  ``run.json`` is moved last.  See the
    module docstring for the protocol; ``staging`` is removed and the folder
    lock released in every case (on failure nothing new is in ``out_dir``).
    Returns ``{key: final path}``.
    """
    staging, out = Path(staging), Path(out_dir)
    if staging not in _holds:
        _acquire(out, staging)
    try:
        final = _publish_locked(staging, out, files, replace=replace, adopt=tuple(adopt))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _release(staging, remove_created=True)
        raise
    _release(staging)
    return final


def _publish_locked(staging: Path, out: Path, files: Mapping[str, Path], *, replace: bool,
                    adopt: tuple[str, ...]) -> dict[str, Path]:
    recover(out)
    previous = read_manifest(out)
    old_entries = dict((previous or {}).get("entries", {}))
    names = {key: Path(path).name for key, path in files.items()}
    check_not_foreign(out, names.values(), previous)
    new_order = sorted(names.values(), key=lambda n: n == "run.json")  # run.json last
    moved_aside = [n for n in old_entries if (replace or n in new_order) and n not in adopt]
    moved_aside += [n for n in new_order if n not in old_entries and _run_folder(out / n)]
    run_id = uuid.uuid4().hex
    entries = {} if replace else {n: e for n, e in old_entries.items() if n not in new_order}
    for key, path in files.items():
        entries[path.name] = {"kind": "dir" if Path(path).is_dir() else "file", "key": key}
    for name in adopt:
        entries[name] = {"kind": "dir" if (out / name).is_dir() else "file", "key": name}
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "run_id": run_id,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "software": _software(), "entries": dict(sorted(entries.items()))}
    for key, path in files.items():
        if Path(path).resolve().parent != staging.resolve():
            _move(Path(path), staging / names[key])  # gather everything directly under the staging folder
    replaced = staging / REPLACED_DIR
    with _critical():
        _write_synced(out / JOURNAL_NAME, {"staging": staging.name, "run_id": run_id, "new": new_order,
                                           "old": moved_aside})
        try:
            if (out / MANIFEST_NAME).exists():
                _move(out / MANIFEST_NAME, replaced / MANIFEST_NAME)
            for name in moved_aside:
                if (out / name).exists() or (out / name).is_symlink():
                    _move(out / name, replaced / name)
            for name in new_order:
                os.replace(staging / name, out / name)
            _write_synced(out / MANIFEST_NAME, manifest)
        except BaseException:
            _roll_back(out, staging, new_order, moved_aside)
            (out / JOURNAL_NAME).unlink()
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (out / JOURNAL_NAME).unlink()
    shutil.rmtree(staging, ignore_errors=True)
    return {key: out / name for key, name in names.items()}


def _software() -> str:
    from .version import __version__

    return f"landslide_sar_plugin {__version__}"


def relocate(files: Mapping[str, Path], old_root: Path, new_root: Path) -> dict[str, Path]:
    """``files`` with paths under ``old_root`` moved under ``new_root`` (after a staging folder was published)."""
    out = {}
    for key, path in files.items():
        p = Path(path)
        try:
            out[key] = Path(new_root) / p.relative_to(old_root)
        except ValueError:
            out[key] = p
    return out


# --------------------------------------------------------------------------- a run


def finish_staged(staged: dict[str, StagedRaster], staging: Path, out_dir: Path, prog: Progress,
                  extra_files: dict[str, Path] | None = None) -> dict[str, Path]:
    """Convert every staged raster to a COG; return them (and ``extra_files``) as paths in ``staging``.

    Publication is :func:`run_staged`'s job, once ``run.json`` and any extra
    outputs are staged too.
    """
    files: dict[str, Path] = {}
    for j, (key, raster) in enumerate(staged.items()):
        prog(j / max(len(staged), 1), f"writing cloud-optimised {raster.name}.tif")
        files[key] = raster.to_cog(staging / f"{raster.name}.tif")
    files.update(extra_files or {})
    prog(1.0, "done")
    return files


@contextlib.contextmanager
def cogs_in_background(staged: Mapping[str, StagedRaster], staging: Path, keys: Iterable[str]):
    """Assemble the COGs of ``staged[key]`` for ``keys`` in a background thread while the caller computes on.

    Assembly only copies compressed tiles (file I/O, which releases the GIL),
    so it overlaps the next stage's computing.  Yields a callable that waits
    and returns ``{key: COG path in staging}`` (re-raising the thread's error).
    Leaving the block, the thread is always finished (stopped between two
    rasters when leaving by an error or a cancel) before the staging folder can
    be discarded.  The rasters must not be read by the caller meanwhile.
    """
    from concurrent.futures import ThreadPoolExecutor

    keys = list(keys)
    stop = threading.Event()

    def assemble() -> dict[str, Path]:
        done = {}
        for key in keys:
            if stop.is_set():
                break
            done[key] = staged[key].to_cog(staging / f"{staged[key].name}.tif")
        return done

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landslide-cog")
    future = pool.submit(assemble)
    try:
        yield future.result
    finally:
        stop.set()
        pool.shutdown(wait=True)


Finalize = Callable[[Path, object], Mapping[str, Path] | None]


def run_staged(out_dir: Path, body: Callable[[Path], object], timings: dict[str, float], t_start: float, *,
               finalize: Finalize | None = None, adopt: Iterable[str] = ()):
    """Run ``body(staging)`` inside a fresh staging folder of ``out_dir`` and publish the run as a whole.

    ``body`` writes its outputs into the staging folder and returns a result
    with ``timings_s``, ``run_info`` and ``files`` (paths in the staging
    folder).  ``finalize(staging, result)``, if given, may add outputs (it
    returns ``{key: path in staging}``: the preview, the evaluation) or amend
    ``result.run_info``.  Then ``run.json`` is staged and everything is
    published (:func:`publish`); ``result.files`` then point into ``out_dir``.
    GDAL's block cache is capped meanwhile, so memory follows the block size.
    On any failure (or cancel) nothing is published and the staging folder is
    removed; a full disk becomes a :class:`DetectionError`.
    """
    out_dir = Path(out_dir)
    staging = new_staging(out_dir)
    with discarded_on_failure(staging, out_dir):
        check_not_foreign(out_dir, RESERVED_NAMES)
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            result = body(staging)
            extra = finalize(staging, result) if finalize is not None else None
        result.files.update(extra or {})
        timings["total_s"] = time.perf_counter() - t_start
        result.timings_s = {**timings, **(result.timings_s or {})}  # a finalize may add (or own) timings
        result.run_info["timings_s"] = {k: round(v, 3) for k, v in result.timings_s.items()}
        write_json(staging / "run.json", result.run_info)
        result.files["run"] = staging / "run.json"
        final = publish(staging, out_dir, result.files, adopt=adopt)
    result.files = final
    return result


@contextlib.contextmanager
def discarded_on_failure(staging: Path, out_dir: Path):
    """On any failure inside the block (or cancel): remove ``staging``; a full disk becomes a
    :class:`DetectionError` naming ``out_dir``, anything else propagates as it is."""
    try:
        yield
    except BaseException as exc:
        discard(staging)
        message = write_failure_message(exc, out_dir)
        if message is not None:
            raise DetectionError(message) from None
        raise


def publish_as_one(out_dir: Path, build: Callable[[Path], dict[str, Path]], *, replace: bool = True
                   ) -> dict[str, Path]:
    """Stage a group of outputs (e.g. ``a_ratio/``, ``model/`` and ``agreement.tif``) and publish them at once.

    ``build(staging)`` writes the entries into the staging folder and returns
    ``{key: path}``; returns ``{key: final path}``.
    """
    out_dir = Path(out_dir)
    staging = new_staging(out_dir)
    with discarded_on_failure(staging, out_dir):
        check_not_foreign(out_dir, RESERVED_NAMES)
        files = build(staging)
        return publish(staging, out_dir, files, replace=replace)


_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
_FULL_TEXT = ("no space left", "write failed", "disk is full", "file too large", "disk quota")


def write_failure_message(exc: BaseException, out_dir: Path) -> str | None:
    """One sentence for a write that failed because the disk is full (or a size limit was hit); else None."""
    full = isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS
    if not full and isinstance(exc, (rasterio.errors.RasterioError, sqlite3.OperationalError, OSError)):
        full = any(t in str(exc).lower() for t in _FULL_TEXT)
    if not full:
        return None
    return (f"writing the outputs into {out_dir} failed: the disk is full (or a file size limit was reached); "
            "free some space or choose another output folder; nothing was published")


# --------------------------------------------------------------------------- small writers


def _json_safe(obj):
    """NaN and infinities become null, so the file stays valid JSON (json.dumps would write ``NaN``)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` as strict JSON (NaN/inf -> null) under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_text(json.dumps(_json_safe(data), indent=2, default=str, allow_nan=False), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def crop(arr: np.ndarray, halo: int) -> np.ndarray:
    """Remove ``halo`` pixels from each side of the last two axes."""
    return arr[..., halo:arr.shape[-2] - halo, halo:arr.shape[-1] - halo] if halo else arr


class StagedRaster:
    """A raster written block by block in the staging folder, published as a cloud-optimised GeoTIFF.

    Blocks are compressed once, as published (:mod:`.cog`: DEFLATE, 512 px
    tiles, overviews streamed alongside); :meth:`to_cog` assembles the final
    file without recompressing.  :attr:`path` is the full-resolution staged
    GeoTIFF, readable by later passes once :meth:`close` d.

    ``intermediate=True`` is for a raster that a later step reads and then
    deletes (the 0/1 raster GDAL polygonises, a smoothed score): uncompressed
    tiles and no overviews, since GDAL's polygonize reads it row by row and
    decompressing a tile per row made tracing 10-100x slower than the raw file.
    ``threads``: GDAL threads compressing the tiles (default every available core; a run passes its
    ``workers`` setting, so a user who keeps a core free for QGIS keeps it free here too); ``predictor``:
    see :func:`.cog.cog_profile`; ``raw_copy``: also write the blocks uncompressed (:attr:`raw_path`)
    for later passes to read.
    """

    def __init__(self, staging: Path, name: str, grid: Grid, *, count: int, dtype: str, nodata,
                 descriptions: list[str] | None = None, tags: dict | None = None, resampling: str = "average",
                 intermediate: bool = False, threads: int | None = None, predictor: int | None = None,
                 raw_copy: bool = False):
        self.name = name
        self.path = staging / f"{name}.stage.tif"
        self.resampling = resampling
        self._writer = CogWriter(self.path, grid, count=count, dtype=dtype, nodata=nodata, resampling=resampling,
                                 descriptions=descriptions, tags=tags, compress=not intermediate, threads=threads,
                                 predictor=predictor)
        # An uncompressed twin for the later passes that read this raster (percentiles, heatmap, zonal
        # statistics): decoding DEFLATE tiles cost them more than computing did.
        self._raw = (CogWriter(staging / f"{name}.raw.tif", grid, count=count, dtype=dtype, nodata=nodata,
                               compress=False) if raw_copy and not intermediate else None)

    @property
    def raw_path(self) -> Path:
        """The uncompressed twin (``raw_copy=True``) or, without one, :attr:`path`; readable once closed."""
        return self._raw.path if self._raw is not None else self.path

    def write(self, window: Window, data: np.ndarray) -> None:
        self._writer.write(window, data)
        if self._raw is not None:
            self._raw.write(window, data)

    def close(self) -> None:
        self._writer.close()
        if self._raw is not None:
            self._raw.close()

    def drop_raw(self) -> None:
        """Delete the uncompressed twin (once no pass reads it any more)."""
        if self._raw is not None:
            self._raw.close()
            self._raw.path.unlink(missing_ok=True)
            self._raw = None

    def to_cog(self, final: Path | None = None) -> Path:
        """The cloud-optimised GeoTIFF (default: ``<name>.tif`` beside the staged file); staged files go."""
        return self._writer.assemble(final or self.path.with_name(f"{self.name}.tif"))


def versions() -> dict:
    import platform

    import scipy

    from .version import __version__

    return {
        "landslide_sar_plugin": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }
