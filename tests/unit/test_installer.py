"""The in-plugin installer's pure parts (which Python, which pip command, where) and one real install."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from landslide_sar_plugin.core import dependencies, installer

PY = (3, 12)


def pick(system, executable, exec_prefix, existing, base=None):
    return installer.choose_interpreter(system, executable, exec_prefix, base or exec_prefix, PY,
                                        exists=lambda p: p in existing)


def test_windows_osgeo4w_uses_the_python_of_its_apps_folder_not_qgis_bin():
    existing = {r"C:\OSGeo4W\apps\Python312\python.exe", r"C:\OSGeo4W\bin\python3.exe"}
    assert pick("Windows", r"C:\OSGeo4W\bin\qgis-bin.exe", r"C:\OSGeo4W\apps\Python312", existing) == \
        r"C:\OSGeo4W\apps\Python312\python.exe"


def test_windows_standalone_installer_and_its_fallback_next_to_qgis_bin():
    exe, prefix = r"C:\Program Files\QGIS 3.34.4\bin\qgis-bin.exe", r"C:\PROGRA~1\QGIS33~1.4\apps\Python312"
    assert pick("Windows", exe, prefix, {prefix + r"\python.exe"}) == prefix + r"\python.exe"
    # A layout where only the launcher next to qgis-bin.exe exists.
    assert pick("Windows", exe, prefix, {r"C:\Program Files\QGIS 3.34.4\bin\python3.exe"}) == \
        r"C:\Program Files\QGIS 3.34.4\bin\python3.exe"
    candidates = installer.interpreter_candidates("Windows", exe, prefix, prefix, PY)
    assert exe not in candidates  # qgis-bin.exe is never run as Python


def test_macos_app_bundle_uses_its_framework_python_not_the_app_binary():
    exe = "/Applications/QGIS-LTR.app/Contents/MacOS/QGIS"
    prefix = "/Applications/QGIS-LTR.app/Contents/Frameworks/Python.framework/Versions/3.12"
    assert pick("Darwin", exe, prefix, {prefix + "/bin/python3.12"}) == prefix + "/bin/python3.12"
    # Older bundles keep Python under Contents/MacOS/bin.
    assert pick("Darwin", exe, "/Applications/QGIS-LTR.app/Contents/MacOS",
                {"/Applications/QGIS-LTR.app/Contents/MacOS/bin/python3"}) == \
        "/Applications/QGIS-LTR.app/Contents/MacOS/bin/python3"
    assert exe not in installer.interpreter_candidates("Darwin", exe, prefix, prefix, PY)


def test_linux_ignores_a_pyenv_shim_and_takes_the_system_python_of_qgis():
    existing = {"/usr/bin/python3.12", "/root/.pyenv/shims/python3"}
    assert pick("Linux", "/root/.pyenv/shims/python3", "/usr", existing) == "/usr/bin/python3.12"
    assert "/root/.pyenv/shims/python3" not in installer.interpreter_candidates(
        "Linux", "/root/.pyenv/shims/python3", "/usr", "/usr", PY)
    # Flatpak QGIS: Python lives under /app.
    assert pick("Linux", "/app/bin/qgis", "/app", {"/app/bin/python3"}) == "/app/bin/python3"


def test_no_python_found_is_one_sentence_naming_where_it_looked():
    with pytest.raises(installer.InstallerError, match=r"not found \(looked for /usr/bin/python3\.12"):
        pick("Linux", "/usr/bin/qgis", "/usr", set())


def test_the_pip_command_installs_into_the_private_folder_only(tmp_path):
    cmd = installer.pip_command("/usr/bin/python3.12", tmp_path / "site", ["rasterio>=1.3,<1.5"])
    assert cmd[:4] == ["/usr/bin/python3.12", "-m", "pip", "install"]
    assert cmd[cmd.index("--target") + 1] == str(tmp_path / "site")
    # PEP 668: --target skips the externally-managed check; never --user or --break-system-packages.
    assert "--user" not in cmd and "--break-system-packages" not in cmd
    assert "--only-binary" in cmd and cmd[-1] == "rasterio>=1.3,<1.5"


def test_requirements_pin_qgis_numpy_and_put_pytorch_on_its_cpu_index():
    groups = installer.requirements_for(["rasterio", "torch", "earthengine-api"], numpy_version="1.24.2")
    assert groups == [(["rasterio>=1.3,<1.5", "earthengine-api>=1.0", "numpy==1.24.2"], None),
                      (["torch==2.13.0", "numpy==1.24.2"], dependencies.PYTORCH_CPU_INDEX)]
    cmd = installer.pip_command("python", "t", groups[1][0], index_url=groups[1][1])
    assert cmd[cmd.index("--index-url") + 1] == "https://download.pytorch.org/whl/cpu"


def test_the_private_folder_is_versioned_and_put_in_front(tmp_path, monkeypatch):
    folder = installer.site_dir(tmp_path, (3, 11), "linux-x86_64")
    assert folder.name == f"py3.11-linux-x86_64-deps{dependencies.DEPENDENCY_SET_VERSION}"
    monkeypatch.setattr(sys, "path", list(sys.path))
    real = installer.site_dir(tmp_path)
    assert installer.activate(tmp_path) == real and str(real) not in sys.path  # not created yet: not added
    real.mkdir(parents=True)
    installer.activate(tmp_path)
    installer.activate(tmp_path)
    # In front: what pip resolved is what imports (Debian's attrs 22.2 breaks the affine 3 pip picks).
    assert sys.path.count(str(real)) == 1 and sys.path[0] == str(real)


def test_pip_runs_without_pythonpath_and_user_site():
    env = installer.install_environment({"PYTHONPATH": "/qgis/plugins", "PATH": "/usr/bin", "PYTHONHOME": "/x"})
    assert "PYTHONPATH" not in env and env["PYTHONNOUSERSITE"] == "1" and env["PYTHONHOME"] == "/x"


def test_pip_progress_only_moves_forward():
    tracker = installer.PipProgress()
    lines = ["Collecting rasterio>=1.3", "  Downloading rasterio-1.4.4-cp311.whl (22.1 MB)", "Collecting affine",
             "Collecting numpy==1.24.2", "Installing collected packages: numpy, affine, rasterio",
             "Successfully installed affine-2.4.0 numpy-1.24.2 rasterio-1.4.4"]
    fractions = [tracker.feed(line)[0] for line in lines]
    assert fractions == sorted(fractions) and 0 < fractions[0] and fractions[-1] == pytest.approx(0.98)
    assert tracker.message.startswith("Successfully installed")


@pytest.mark.parametrize("tail, words", [
    (["ERROR: Could not find a version that satisfies the requirement rasterio"], "no build"),
    (["WARNING: Retrying ... NewConnectionError('Failed to establish a new connection')"], "could not be reached"),
])
def test_pip_failures_become_one_sentence(tail, words):
    text = installer._pip_failure(tail, 1)
    assert text.startswith("installing failed: ") and words in text and "\n" not in text


def test_merge_replaces_older_copies_of_a_package(tmp_path):
    target, staging = tmp_path / "site", tmp_path / "staging"
    (target / "pkg").mkdir(parents=True)
    (target / "pkg" / "old.py").write_text("")
    (target / "pkg-1.0.dist-info").mkdir()
    (staging / "pkg").mkdir(parents=True)
    (staging / "pkg" / "new.py").write_text("")
    (staging / "pkg-2.0.dist-info").mkdir()
    installer._merge_into(staging, target)
    assert sorted(p.name for p in (target / "pkg").iterdir()) == ["new.py"]
    assert sorted(p.name for p in target.glob("*.dist-info")) == ["pkg-2.0.dist-info"]


def _fake_python(tmp_path, version):
    script = tmp_path / "python-fake"
    script.write_text(f"#!/bin/sh\necho '{{\"version\": [{version[0]}, {version[1]}, 0], \"prefix\": \"/x\", "
                      f"\"pip\": true}}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.mark.skipif(sys.platform.startswith("win"), reason="uses a shell script as a fake Python")
def test_a_python_of_another_version_is_refused(tmp_path):
    with pytest.raises(installer.InstallerError, match="packages for it would not load here"):
        installer.probe_interpreter(_fake_python(tmp_path, (2, 7)))
    assert installer.probe_interpreter(_fake_python(tmp_path, sys.version_info))["pip"] is True


def test_requirements_txt_mirrors_the_dependency_table():
    text = (Path(dependencies.__file__).parent.parent / "requirements.txt").read_text()
    lines = {line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")}
    # the training packages (torch and onnx) go into the training folder, not the plugin's requirements
    assert lines == {p.spec for p in dependencies.PACKAGES if p.pip not in dependencies.TRAINING_PACKAGES}


def test_install_command_names_the_private_folder_and_the_pins():
    cmd = dependencies.install_command(["rasterio"])
    assert "-m pip install --target" in cmd and '"rasterio>=1.3,<1.5"' in cmd and "--user" not in cmd


def test_diagnostics_report_names_versions_gdal_and_paths():
    text = installer.diagnostics_report({"QGIS": "3.22.16"})
    assert "QGIS: 3.22.16" in text and "rasterio's GDAL" in text and "Private package folder" in text
    for pkg in dependencies.PACKAGES:
        assert pkg.pip in text


# --------------------------------------------------------------------------- a real install (needs the registry)


def test_a_real_install_into_a_temporary_folder_and_a_cancelled_one(tmp_path):
    target = tmp_path / "site"
    lines, steps = [], []
    try:
        installer.install_packages(["tomli-w"], target, log=lines.append, progress=lambda f, m: steps.append(f))
    except installer.InstallerError as exc:
        if "could not be reached" in str(exc) or "no build" in str(exc):
            pytest.skip(f"the package registry cannot be reached here: {exc}")
        raise
    assert (target / "tomli_w").is_dir() and steps[-1] == 1.0
    assert not list(tmp_path.glob(".site.partial-*")), "the staging folder is removed"
    assert any(line.startswith("$ ") and "--target" in line for line in lines)
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", "import tomli_w; print(tomli_w.__file__)"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip().startswith(str(target))
    # A cancelled install leaves the folder as it was and no staging folder.
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(installer.InstallCancelled):
        installer.install_packages(["pluggy"], target, is_cancelled=lambda: True)
    assert sorted(p.name for p in target.iterdir()) == before and not list(tmp_path.glob(".site.partial-*"))


def test_a_package_qgis_already_has_at_that_version_is_dropped_from_the_folder(tmp_path):
    import numpy

    staging = tmp_path / "staging"
    info = staging / f"numpy-{numpy.__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: numpy\nVersion: {numpy.__version__}\n")
    (staging / "numpy").mkdir()
    (staging / "numpy" / "__init__.py").write_text("")
    (staging / "bin").mkdir()
    (staging / "bin" / "other-tool").write_text("")
    (info / "RECORD").write_text("numpy/__init__.py,,\n../../outside.txt,,\n")
    (tmp_path / "outside.txt").write_text("keep me")
    other = staging / "newpkg-9.9.dist-info"
    other.mkdir()
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: newpkg-not-installed\nVersion: 9.9\n")
    assert installer.drop_duplicates(staging) == [f"numpy {numpy.__version__}"]
    assert not (staging / "numpy").exists() and not info.exists() and other.exists()
    assert (tmp_path / "outside.txt").read_text() == "keep me" and (staging / "bin" / "other-tool").exists()


def test_a_package_that_does_not_import_is_not_published(tmp_path):
    folder = tmp_path / "staging"
    (folder / "brokenpkg").mkdir(parents=True)
    (folder / "brokenpkg" / "__init__.py").write_text("raise TypeError(\"No '__dict__' attribute on 'Affine'\")\n")
    lines = []
    with pytest.raises(installer.InstallerError, match="does not import in QGIS's Python .*__dict__"):
        installer.check_imports(sys.executable, folder, ["brokenpkg"], lines.append)
