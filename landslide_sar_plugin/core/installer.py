"""Installing missing Python packages for the plugin into a private folder, with the Python that runs QGIS.

Why a private folder: QGIS's own Python is often not writable (Windows
``Program Files``), is managed by the OS (Debian 12 refuses ``pip install
--user`` with PEP 668 "externally-managed-environment"), or is inside a signed
app bundle (macOS).  ``pip install --target DIR`` writes only into ``DIR``
(pip skips the PEP 668 check for ``--target``), and the plugin puts ``DIR``
at the front of ``sys.path`` at start-up (:func:`activate`).

In front, because what pip resolved must be what imports: Debian 12's QGIS
Python has attrs 22.2, with which the affine 3 that pip picks for rasterio
fails at run time ("No '__dict__' attribute on 'Affine' instance"), although
affine declares ``attrs>=21.3``; found in the real QGIS desktop.  Packages
QGIS already has at the same version (numpy, pinned to QGIS's) are removed
from the folder, so QGIS's own numpy and its GDAL bindings are never
shadowed.  Before the folder is published, the new packages are imported (and
smoke-tested) in a fresh process of QGIS's Python with the folder in front,
exactly as the plugin will see them; a failure publishes nothing.

The folder is versioned: ``<base>/py3.11-linux-x86_64-deps1`` names the
Python minor version (compiled wheels are per version), the platform and
:data:`.dependencies.DEPENDENCY_SET_VERSION`, so an upgraded QGIS or changed
pins get a fresh folder instead of mixing binaries.

Which interpreter: ``sys.executable`` is *not* the right one inside QGIS (on
Windows it is ``qgis-bin.exe``, on macOS the QGIS app binary, on Linux whatever
``python3`` comes first on PATH, e.g. a pyenv shim).  :func:`interpreter_candidates`
derives the Python of the running interpreter from ``sys.exec_prefix`` per
platform; :func:`choose_interpreter` takes the first that exists and
:func:`probe_interpreter` checks it really is the same Python version with pip.

Everything here is pure Python (no QGIS, no Qt): the dialog in
``gui/installer.py`` runs :func:`install_packages` in a background task.
"""

from __future__ import annotations

import importlib
import json
import ntpath
import os
import platform
import posixpath
import re
import shutil
import subprocess  # nosec B404
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .dependencies import BY_PIP, DEPENDENCY_SET_VERSION, PACKAGES, is_available

LogFn = Callable[[str], None]
CancelFn = Callable[[], bool]


class InstallerError(RuntimeError):
    """Installing cannot go on; the message says what is wrong and what to do."""


class InstallCancelled(InstallerError):
    """The user cancelled; nothing was installed."""


# --------------------------------------------------------------------------- where


def platform_tag(system: str | None = None, machine: str | None = None) -> str:
    system = (system or platform.system()).lower()
    machine = (machine or platform.machine()).lower().replace("amd64", "x86_64")
    return f"{system}-{machine}"


def site_dir(base: str | os.PathLike, version: Sequence[int] | None = None, tag: str | None = None) -> Path:
    """The private, versioned package folder under ``base`` (e.g. the QGIS profile's plugin data folder)."""
    major, minor = (version or sys.version_info)[:2]
    return Path(base) / f"py{major}.{minor}-{tag or platform_tag()}-deps{DEPENDENCY_SET_VERSION}"


def default_base() -> Path:
    """Outside QGIS (CLI, tests): ``~/.local/share/landslide_sar_plugin/python`` (``%APPDATA%`` on Windows)."""
    if sys.platform.startswith("win"):
        root = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Application Support"
    else:
        root = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return root / "landslide_sar_plugin" / "python"


_active_base: Path | None = None


def site_dir_hint() -> Path:
    """The folder the plugin uses (the one :func:`activate` was given, else :func:`default_base`'s)."""
    return site_dir(_active_base or default_base())


def activate(base: str | os.PathLike | None = None) -> Path:
    """Put the private package folder at the front of ``sys.path`` (once) so packages installed there import."""
    global _active_base
    _active_base = Path(base) if base is not None else default_base()
    folder = site_dir(_active_base)
    if folder.is_dir() and str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
        importlib.invalidate_caches()
    return folder


# --------------------------------------------------------------------------- which Python


def interpreter_candidates(system: str, executable: str, exec_prefix: str, base_exec_prefix: str,
                           version: Sequence[int]) -> list[str]:
    """Paths that may hold the Python binary of the running interpreter, best first (pure; nothing is checked).

    * Windows (OSGeo4W and the standalone installer): ``python.exe`` in ``sys.exec_prefix``
      (``...\\apps\\Python312``); then ``python3.exe``/``python.exe`` next to ``qgis-bin.exe``.
    * macOS (QGIS.app): ``bin/python3.X`` in the framework prefix; then ``Contents/MacOS/bin/python3``.
    * Linux (distribution packages, Flatpak ``/app``, conda): ``bin/python3.X`` in ``sys.exec_prefix``.
    ``sys.executable`` comes last, and only when it is a Python binary inside that prefix.
    """
    major, minor = version[:2]
    out: list[str] = []
    system = system.lower()
    exe = executable or ""
    paths = ntpath if system.startswith("win") else posixpath  # the rules are tested for every OS on any OS
    exe_dir = paths.dirname(exe)
    if system.startswith("win"):
        for prefix in (exec_prefix, base_exec_prefix):
            out.append(_join_win(prefix, "python.exe"))
        out += [_join_win(exe_dir, "python3.exe"), _join_win(exe_dir, "python.exe")]
    else:
        for prefix in (exec_prefix, base_exec_prefix):
            out += [f"{prefix}/bin/python{major}.{minor}", f"{prefix}/bin/python{major}"]
        if system == "darwin" and "/Contents/MacOS" in exe:
            bundle = exe.split("/Contents/MacOS")[0]
            out += [f"{bundle}/Contents/MacOS/bin/python{major}.{minor}", f"{bundle}/Contents/MacOS/bin/python3"]
    base = paths.basename(exe).lower()
    sep = "\\" if system.startswith("win") else "/"
    inside = any(exe.startswith(p + sep) for p in (exec_prefix, base_exec_prefix) if p)
    if base.startswith("python") and inside:
        out.append(exe)
    seen, unique = set(), []
    for path in out:
        if path and path not in seen:
            seen.add(path)
            unique.append(path)
    return unique


def _join_win(folder: str, name: str) -> str:
    return f"{folder.rstrip(chr(92) + '/')}\\{name}" if folder else ""


def choose_interpreter(system: str | None = None, executable: str | None = None, exec_prefix: str | None = None,
                       base_exec_prefix: str | None = None, version: Sequence[int] | None = None,
                       exists: Callable[[str], bool] = os.path.isfile) -> str:
    """The first existing :func:`interpreter_candidates` entry; :class:`InstallerError` when none exists."""
    candidates = interpreter_candidates(
        system or platform.system(), sys.executable if executable is None else executable,
        sys.exec_prefix if exec_prefix is None else exec_prefix,
        sys.base_exec_prefix if base_exec_prefix is None else base_exec_prefix, version or sys.version_info)
    for path in candidates:
        if exists(path):
            return path
    raise InstallerError("the Python that runs QGIS was not found (looked for " + ", ".join(candidates[:4])
                         + "); install the packages from the OSGeo4W Shell (Windows) or a terminal with QGIS's "
                         "Python, see the plugin's README")


def probe_interpreter(python: str, timeout_s: float = 60.0) -> dict:
    """Run ``python`` once: its version, prefix and whether it has pip; :class:`InstallerError` if unusable."""
    code = ("import sys, json, importlib.util; print(json.dumps({'version': list(sys.version_info[:3]), "
            "'prefix': sys.prefix, 'pip': importlib.util.find_spec('pip') is not None}))")
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True,  # noqa: S603  # nosec B603
                              timeout=timeout_s, env=install_environment())
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        raise InstallerError(f"{python} could not be run ({exc}); it is not a usable Python") from None
    if tuple(info["version"][:2]) != tuple(sys.version_info[:2]):
        raise InstallerError(f"{python} is Python {'.'.join(map(str, info['version'][:2]))}, but QGIS runs Python "
                             f"{sys.version_info[0]}.{sys.version_info[1]}; packages for it would not load here")
    return info


def pip_missing_advice(system: str | None = None) -> str:
    system = (system or platform.system()).lower()
    if system == "linux":
        return ("QGIS's Python has no pip: install it with your package manager (Debian/Ubuntu: sudo apt install "
                "python3-pip), or install the packages themselves from it (Debian/Ubuntu: sudo apt install "
                "python3-rasterio python3-scipy), then restart QGIS")
    if system.startswith("win"):
        return "QGIS's Python has no pip: run the OSGeo4W setup and add the python3-pip package, then restart QGIS"
    return "QGIS's Python has no pip: reinstall QGIS from qgis.org (its macOS package includes pip)"


# --------------------------------------------------------------------------- what to run


def requirements_for(pip_names: Sequence[str], numpy_version: str | None = None
                     ) -> list[tuple[list[str], str | None]]:
    """``(requirements, index_url)`` per pip run: default-index packages together, PyTorch on its CPU index.

    When numpy is already importable its version is pinned, so pip picks builds of the other packages that work
    with the numpy QGIS ships (a newer numpy installed into the private folder would be shadowed anyway).
    """
    if numpy_version is None and is_available("numpy"):
        import numpy

        numpy_version = numpy.__version__
    pins = [f"numpy=={numpy_version}"] if numpy_version and "numpy" not in pip_names else []
    by_index: dict[str | None, list[str]] = {}
    for name in pip_names:
        pkg = BY_PIP.get(name)
        by_index.setdefault(pkg.index_url if pkg else None, []).append(pkg.spec if pkg else name)
    # numpy itself is on PyTorch's index too, so the pin can go with every run.
    return [(specs + pins, index) for index, specs in sorted(by_index.items(), key=lambda kv: kv[0] or "")]


def pip_command(python: str, target: str | os.PathLike, requirements: Sequence[str], *,
                index_url: str | None = None) -> list[str]:
    """``python -m pip install --target TARGET ...``: never touches QGIS's own environment (PEP 668-safe)."""
    cmd = [python, "-m", "pip", "install", "--target", str(target), "--upgrade", "--no-input",
           "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off",
           "--only-binary", ":all:"]
    if index_url:
        cmd += ["--index-url", index_url]
    return cmd + list(requirements)


def install_environment(base: dict | None = None) -> dict:
    """The environment for pip: QGIS's own (PYTHONHOME, PATH to its DLLs), minus what would redirect it."""
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONPATH", None)  # QGIS's plugin paths must not make pip think packages are installed
    env["PYTHONNOUSERSITE"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


# --------------------------------------------------------------------------- running pip


@dataclass
class PipProgress:
    """Turns pip's output lines into a 0..1 fraction and a short status message (for a progress bar)."""

    n_requested: int = 1
    collected: int = 0
    fraction: float = 0.0
    message: str = "starting pip"

    def feed(self, line: str) -> tuple[float, str]:
        text = line.strip()
        if text.startswith("Collecting "):
            self.collected += 1
            self.message = text
            self.fraction = max(self.fraction, min(0.6, 0.05 + 0.55 * (1 - 0.7 ** self.collected)))
        elif text.startswith("Downloading "):
            self.message = text[:120]
        elif text.startswith("Installing collected packages"):
            self.message, self.fraction = "installing: " + text.split(":", 1)[-1].strip()[:100], 0.8
        elif text.startswith("Successfully installed"):
            self.message, self.fraction = text[:160], 0.98
        return self.fraction, self.message


def install_packages(pip_names: Sequence[str], target: str | os.PathLike, *, python: str | None = None,
                     log: LogFn | None = None, progress: Callable[[float, str], None] | None = None,
                     is_cancelled: CancelFn | None = None, timeout_s: float = 3600.0) -> Path:
    """Install ``pip_names`` into ``target`` with pip, as a whole or not at all.

    pip writes into a staging folder beside ``target``; only when every pip
    run succeeded are the new packages moved into ``target``.  A cancel
    (``is_cancelled()``, polled while pip runs) or a failure stops pip and
    removes the staging folder.  ``log`` receives every output line.
    """
    log = log or (lambda line: None)
    target = Path(target)
    python = python or choose_interpreter()
    info = probe_interpreter(python)
    if not info["pip"]:
        raise InstallerError(pip_missing_advice())
    log(f"Python: {python} (Python {'.'.join(map(str, info['version']))}, prefix {info['prefix']})")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        groups = requirements_for(pip_names)
        for i, (requirements, index) in enumerate(groups):
            cmd = pip_command(python, staging, requirements, index_url=index)
            log("$ " + " ".join(cmd))
            _run_pip(cmd, log, progress, is_cancelled, timeout_s, (i / len(groups), (i + 1) / len(groups)),
                     len(requirements))
        for name in drop_duplicates(staging):
            log(f"kept QGIS's own {name} (the same version); removed pip's copy")
        check_imports(python, staging, pip_names, log)
        _merge_into(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(staging, ignore_errors=True)
    if progress is not None:
        progress(1.0, "installed")
    log(f"installed into {target}")
    return target


def _run_pip(cmd, log, progress, is_cancelled, timeout_s, span, n_requested) -> None:
    lo, hi = span
    tracker = PipProgress(n_requested)
    # The command is built by pip_command from our own pins, never from free text: no shell, no injection.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # noqa: S603  # nosec B603
                            text=True, encoding="utf-8", errors="replace", env=install_environment(), bufsize=1)
    deadline = time.monotonic() + timeout_s
    tail: list[str] = []
    try:
        for line in iter(proc.stdout.readline, ""):
            line = line.rstrip()
            if line:
                log(line)
                tail = (tail + [line])[-6:]
                fraction, message = tracker.feed(line)
                if progress is not None:
                    progress(lo + (hi - lo) * fraction, message)
            if is_cancelled is not None and is_cancelled():
                raise InstallCancelled("installation cancelled; nothing was installed")
            if time.monotonic() > deadline:
                raise InstallerError(f"pip did not finish in {timeout_s / 60:.0f} minutes; check the network and "
                                     "try again")
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if code != 0:
        raise InstallerError(_pip_failure(tail, code))


def _pip_failure(tail: list[str], code: int) -> str:
    text = " ".join(tail)
    if re.search(r"No matching distribution|Could not find a version", text):
        why = "no build of a package fits this QGIS's Python version and platform"
    elif re.search(r"NewConnectionError|Failed to establish|Temporary failure in name resolution|"
                   r"ConnectTimeout|Network is unreachable|ProxyError", text):
        why = "the package index could not be reached (no internet, or a proxy: set it in QGIS's network settings " \
              "or the HTTPS_PROXY variable)"
    elif "Permission denied" in text:
        why = "the plugin's package folder is not writable"
    else:
        why = f"pip stopped with exit code {code}"
    last = tail[-1] if tail else ""
    return f"installing failed: {why}; pip said: {last[:300]} (the full log is in the installer window)"


# A few lines per package that exercise what broke in practice (affine's attrs-based cached properties).
SMOKE_TESTS = {
    "rasterio": "from rasterio.transform import from_origin; t = from_origin(0.0, 10.0, 1.0, 1.0); "
                "assert (~t * (0.0, 0.0)) == (0.0, 10.0) and t == t",
    "onnxruntime": "assert 'CPUExecutionProvider' in onnxruntime.get_available_providers()",
}


def check_imports(python: str, folder: Path, pip_names: Sequence[str], log: LogFn) -> None:
    """Import each package from ``folder`` (in front of QGIS's own packages) in a fresh process; raise if one fails."""
    for name in pip_names:
        pkg = BY_PIP.get(name)
        module = pkg.module if pkg else name.replace("-", "_")
        code = (f"import sys; sys.path.insert(0, {str(folder)!r}); import {module}; "
                + SMOKE_TESTS.get(module, "pass"))
        try:
            proc = subprocess.run([python, "-c", code], capture_output=True, text=True,  # noqa: S603  # nosec B603
                                  timeout=300, env=install_environment())
        except (OSError, subprocess.SubprocessError) as exc:
            raise InstallerError(f"{name} could not be tried after installing ({exc})") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            log(proc.stderr)
            raise InstallerError(f"{name} was installed but does not import in QGIS's Python ({last[:200]}); nothing "
                                 "was kept; send the diagnostics with a bug report")
        log(f"{name}: imports and works")


def drop_duplicates(staging: Path) -> list[str]:
    """Remove from ``staging`` each distribution the running Python already has at the same version."""
    import importlib.metadata as md

    dropped = []
    for info in sorted(staging.glob("*.dist-info")):
        meta = md.PathDistribution(info)
        name, version = meta.metadata["Name"], meta.version
        try:
            if md.version(name) != version:
                continue
        except md.PackageNotFoundError:
            continue
        root = staging.resolve()
        for rel in (meta.files or []):
            path = (staging / rel).resolve()
            if root in path.parents and path.is_file():  # never outside the staging folder (RECORD has ../bin)
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
        dropped.append(f"{name} {version}")
    for folder in sorted((p for p in staging.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(folder.iterdir()):
            folder.rmdir()
    return dropped


def _merge_into(staging: Path, target: Path) -> None:
    """Move each top-level entry of ``staging`` into ``target``, replacing older copies of the same packages."""
    target.mkdir(parents=True, exist_ok=True)
    if not staging.is_dir():
        return
    new = sorted(staging.iterdir())
    # An upgraded package's older .dist-info would make importlib.metadata report two versions.
    new_projects = {_project(e.name) for e in new if e.name.endswith(".dist-info")}
    for info in target.glob("*.dist-info"):
        if _project(info.name) in new_projects:
            shutil.rmtree(info, ignore_errors=True)
    for entry in new:
        dest = target / entry.name
        if dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif dest.exists() or dest.is_symlink():
            dest.unlink()
        os.replace(entry, dest)


def _project(dist_info_name: str) -> str:
    stem = dist_info_name[:-len(".dist-info")] if dist_info_name.endswith(".dist-info") else dist_info_name
    return re.sub(r"[-_.]+", "_", stem.rsplit("-", 1)[0]).lower()


# --------------------------------------------------------------------------- diagnostics


def package_report() -> list[dict]:
    """Per dependency: import name, pip name, required, version and location (None when not importable)."""
    rows = []
    for pkg in PACKAGES:
        row = {"pip": pkg.pip, "module": pkg.module, "required": pkg.required, "purpose": pkg.purpose,
               "spec": pkg.spec, "version": None, "location": None, "error": None}
        if is_available(pkg.module):
            try:
                mod = importlib.import_module(pkg.module)
                row["version"] = getattr(mod, "__version__", "?")
                row["location"] = str(Path(getattr(mod, "__file__", "") or "").parent)
            except Exception as exc:  # a package that is present but broken: say how it breaks
                row["error"] = f"{type(exc).__name__}: {exc}"
        rows.append(row)
    return rows


def diagnostics_report(extra: dict[str, str] | None = None) -> str:
    """A plain-text report a user can copy into a bug report: versions, GDAL/PROJ, paths, environment."""
    from .version import __version__

    lines = [f"Landslide SAR mapper {__version__}",
             f"Python {platform.python_version()} ({sys.executable}); prefix {sys.exec_prefix}",
             f"Platform {platform.platform()} ({platform_tag()})"]
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {value}")
    try:
        lines.append(f"Python for installing: {choose_interpreter()}")
    except InstallerError as exc:
        lines.append(f"Python for installing: not found ({exc})")
    folder = site_dir_hint()
    lines.append(f"Private package folder: {folder} ({'exists' if folder.is_dir() else 'not created yet'}; "
                 f"{'on' if str(folder) in sys.path else 'not on'} sys.path)")
    lines.append("Packages:")
    for row in package_report():
        state = row["error"] or (f"{row['version']} in {row['location']}" if row["version"] else "not installed")
        lines.append(f"  {row['pip']:<16} {'required' if row['required'] else 'optional':<8} {state}")
    if is_available("rasterio"):
        try:
            import rasterio

            proj = getattr(rasterio, "__proj_version__", "?")
            lines.append(f"rasterio's GDAL {rasterio.__gdal_version__}, PROJ {proj}")
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            lines.append(f"rasterio does not import: {type(exc).__name__}: {exc}")
    for var in ("PROJ_DATA", "PROJ_LIB", "GDAL_DATA", "PYTHONHOME", "PYTHONPATH"):
        if os.environ.get(var):
            lines.append(f"{var}={os.environ[var]}")
    return "\n".join(lines) + "\n"
