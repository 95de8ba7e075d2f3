"""What every benchmark shares: child processes, interleaved repeats, robust summaries, machine facts.

A benchmark that a reader can trust on a shared machine:

* each timed case runs in its own Python process (peak RSS and CPU time belong
  to that case alone; imports and data caches of one case never help another);
* cases are **interleaved** (A B C, C B A, ...) rather than batched (A A A,
  B B B), so a burst of load from elsewhere hits every case alike; ratios are
  then computed **within one repeat** and summarised over the repeats;
* every summary is the median with the min and max of the repeats;
* the machine's load average is recorded before and after, and the CPU time of
  every case (user + system, all threads and child processes) divided by its
  wall time gives the cores it used.

A case's child prints one JSON object as its last line of stdout; this module
adds ``cpu_s``, ``cores_used`` and ``peak_rss_mb`` measured around the work
(:func:`measured`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cores_available() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict:
    """Facts a reader needs to judge the numbers: cores, load, versions, date."""
    info = {
        "date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpus": os.cpu_count(),
        "cores_available": cores_available(),
        "load_average_1_5_15": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        import numpy
        import rasterio

        info.update(numpy=numpy.__version__, rasterio=rasterio.__version__, gdal=rasterio.__gdal_version__)
    except ImportError:
        pass
    return info


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measured(work: Callable[[], dict]) -> dict:
    """Run ``work()`` (in a child process) and add wall seconds, CPU seconds, cores used and peak RSS."""
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    info = work() or {}
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024.0
    return {"seconds": round(seconds, 3), "cpu_s": round(cpu, 3), "cores_used": round(cpu / max(seconds, 1e-9), 3),
            "peak_rss_mb": round(peak_mb, 1), **info}


def child_main(work: Callable[[], dict]) -> int:
    """Body of a child process: measure ``work`` and print the JSON line the parent reads."""
    print(json.dumps(measured(work)), flush=True)
    return 0


def run_child(script: Path, args: Sequence[str], *, env: dict | None = None, timeout_s: float = 3600) -> dict:
    """Run ``python script args`` and return its last JSON line (raises with its stderr on failure)."""
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script.name} {' '.join(args)} printed no JSON:\n{proc.stdout[-2000:]}")
    return json.loads(lines[-1])


def summary(values: Sequence[float], digits: int = 3) -> dict:
    """Median, min, max and count of repeated measurements."""
    vals = [float(v) for v in values]
    return {"median": round(statistics.median(vals), digits), "min": round(min(vals), digits),
            "max": round(max(vals), digits), "n": len(vals)}


def interleave(cases: dict[str, Callable[[], dict]], repeats: int, *, log=print) -> dict[str, list[dict]]:
    """Run every case once per repeat, alternating the order (A B C, C B A, ...); ``{case: [result per repeat]}``.

    Alternating cancels a systematic advantage of running first or last (page
    cache, CPU frequency, another process starting or ending).
    """
    out: dict[str, list[dict]] = {name: [] for name in cases}
    names = list(cases)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            fn = cases[name]
            res = fn()
            res["repeat"] = r
            res["load_average_1m"] = load_average()[:1]
            out[name].append(res)
            log(json.dumps({"case": name, **res}))
    return out


def paired_ratio(runs: dict[str, list[dict]], num: str, den: str, key: str = "seconds") -> dict | None:
    """Summary of ``runs[num][i][key] / runs[den][i][key]`` over the repeats (ratios within one repeat)."""
    if num not in runs or den not in runs:
        return None
    pairs = [a[key] / b[key] for a, b in zip(runs[num], runs[den]) if b[key]]
    return summary(pairs) if pairs else None


def summarise_runs(runs: dict[str, list[dict]], keys=("seconds", "cpu_s", "cores_used", "peak_rss_mb")) -> dict:
    return {name: {k: summary([r[k] for r in rs]) for k in keys if rs and k in rs[0]} for name, rs in runs.items()}


def write_report(path: Path, report: dict) -> None:
    """Write the JSON report atomically, with the machine's load average at the end."""
    report.setdefault("machine", {})["load_average_after"] = load_average()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    tmp.replace(path)
    print(f"report: {path}")


def use_engine_root(root: str | None) -> None:
    """Import ``landslide_sar_plugin`` from ``root`` (a baseline checkout) instead of this tree."""
    sys.path.insert(0, str(Path(root).resolve()) if root else str(ROOT))
