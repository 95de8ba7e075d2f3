"""Event ``k`` of generator family ``f``: one small API for training, evaluation and the retrain benchmark.

A *family* is a way of making an event with known landslides.  Models are
judged on families they were not trained on (leave one family out), because a
model can learn the quirks of one generator instead of landslides:

``simulator``
    the project's calibrated simulator (:mod:`landslide_sar_plugin.core.simulate`,
    ``random`` preset: terrain, land cover, regime, dates, levels and change drawn
    per seed); 10 m, both orbit passes.  SYNTHETIC.
``real_background``
    real NASA OPERA RTC-S1 stacks (30 m, one ascending track, VV+VH) with
    SYNTHETIC slides imprinted into the post-event scenes (:mod:`.imprint`);
    "real-background" cases, never accuracy on a real event.
``altgen``
    an independent generator written for evaluation only (:mod:`.altgen`):
    every modelling choice differs from the simulator's.  SYNTHETIC.

Splits keep the sides apart: ``train`` and ``val`` and ``test`` use disjoint
seeds; for ``real_background`` ``train`` are cases generated on the tuning
burst T137-292319-IW2 with the 2021/2022 dates (any seed), ``val`` the
benchmark's tuning cases on burst T137-292321-IW2 and ``test`` the benchmark's
REPORT cases (bursts T137-292320-IW2/-292322-IW2, the 2023 season and the
year-apart windows, VH-only cases included); ``altgen`` has only ``val`` (for
choosing between designs) and ``test`` (reported), never ``train``.

:func:`family_event` writes (or reuses) the event under ``out_dir`` and returns
a :class:`FamilyEvent`: the scenes folder, DEM, truth mask, event time and
windows, the pixel size to run at, and for no-change real cases the land mask
that false alarms are counted on.  Same arguments, same files.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FAMILIES = ("simulator", "real_background", "altgen")
SPLITS = ("train", "val", "test")
SIM_SEED_BASE = {"train": 11_000, "val": 12_000, "test": 13_000}
ALTGEN_SEED_BASE = {"val": 7_100, "test": 7_000}
SIM_SIZE_PX = 384
ALTGEN_SIZE_PX = 448
REAL_DATA_ENV = "LANDSLIDE_SAR_REAL_DATA"
TRAIN_BURST = "T137-292319-IW2"
OCEAN_BURSTS = ("T137-292318-IW1", "T137-292319-IW1")


class FamilyError(ValueError):
    """An unknown family or split, or data that is not here; the message says which."""


@dataclass
class FamilyEvent:
    """Everything a run or a score needs for one event of one family."""

    family: str
    split: str
    index: int
    event_id: str
    scenes_dir: Path
    dem: Path
    truth_mask: Path | None  # 0/1 GeoTIFF (None: no-change case without truth)
    event_time: _dt.datetime
    pre_range: tuple[_dt.datetime, _dt.datetime] | None = None
    post_range: tuple[_dt.datetime, _dt.datetime] | None = None
    pixel_size: float | None = None  # None = the finest input resolution (what a user gets)
    regime: str = ""
    kind: str = "event"  # "event" or "no_change"
    land_mask: Path | None = None
    labels: Path | None = None  # truth polygons (GeoPackage) where the generator writes them
    synthetic: bool = True  # True: every pixel simulated; False: real backscatter (slides may be imprinted)
    polarisations: tuple[str, ...] = ("VV", "VH")
    n_passes: int = 2

    def to_dict(self) -> dict:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        out["event_time"] = self.event_time.strftime("%Y-%m-%dT%H:%M:%SZ")
        for key in ("pre_range", "post_range"):
            if getattr(self, key):
                out[key] = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in getattr(self, key)]
        out["polarisations"] = list(self.polarisations)
        return out


# --------------------------------------------------------------------------- real data


def real_data_roots() -> list[Path]:
    """Where real OPERA burst folders are looked for: ``$LANDSLIDE_SAR_REAL_DATA``, the shared real-data
    folder beside a clone, the small fixture shipped with the tests."""
    repo = Path(__file__).resolve().parents[3]
    roots = []
    if os.environ.get(REAL_DATA_ENV):
        roots.append(Path(os.environ[REAL_DATA_ENV]))
    roots += [repo.parent / "shared" / "realdata" / "opera_rtc_s1_california_t137",
              repo / "tests" / "fixtures" / "opera_rtc_s1_t137"]
    return roots


def real_burst_dir(burst: str, real_root: str | Path | None = None) -> Path:
    roots = [Path(real_root)] if real_root else real_data_roots()
    for root in roots:
        if (root / burst).is_dir():
            return root / burst
    raise FamilyError(f"the real OPERA burst {burst} is not in {', '.join(str(r) for r in roots)}; give the "
                      f"folder of the burst folders (real_root=, or ${REAL_DATA_ENV})")


def real_cases(split: str, kind: str = "imprinted") -> list:
    """The :class:`.imprint.CaseSpec` list of a real-background split (``kind`` imprinted, no_change or all)."""
    from . import imprint

    if split == "test":
        specs = imprint.benchmark_cases(["report"])
    elif split == "val":
        specs = [s for s in imprint.benchmark_cases(["tuning"]) if s.burst != TRAIN_BURST]
    elif split == "train":
        specs = training_real_cases()
    else:
        raise FamilyError(f"split must be one of {SPLITS}, not {split!r}")
    return [s for s in specs if kind == "all" or s.kind == kind]


_DATES_2021 = ("2021-11-19", "2021-11-25", "2021-12-01", "2021-12-07", "2021-12-13", "2021-12-19")
_DATES_2022 = ("2022-11-02", "2022-11-14", "2022-11-26", "2022-12-08", "2022-12-20", "2023-01-01")


def training_windows() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Pre/post windows on the tuning dates (2021 and 2022 seasons only; no report date)."""
    out = []
    for season in (_DATES_2021, _DATES_2022):
        for n_pre in (2, 3, 4):
            for n_post in (1, 2):
                for start in range(0, len(season) - n_pre - n_post + 1):
                    out.append((season[start:start + n_pre], season[start + n_pre:start + n_pre + n_post]))
    for n_pre in (3, 6):
        for post in (_DATES_2022[:1], _DATES_2022[:2], _DATES_2022[2:4]):
            out.append((_DATES_2021[-n_pre:], post))
    return out


def training_real_cases(n_per_window: int = 2) -> list:
    """Imprinted training cases on the tuning burst (both regimes, seeds far from the benchmark's), plus
    no-change cases on the two ocean bursts (negatives: noisy water, no slide)."""
    from . import imprint

    cases = []
    for w, (pre, post) in enumerate(training_windows()):
        for rep in range(n_per_window):
            regime = ("earthquake", "rain")[(w + rep) % 2]
            seed = 20_000_000 + 100 * w + rep
            cases.append(imprint.CaseSpec(f"train_{TRAIN_BURST}_w{w:02d}_{regime}_{rep}", TRAIN_BURST, pre, post,
                                          "tuning", regime, seed))
    for burst in OCEAN_BURSTS:
        for w, (pre, post) in enumerate(training_windows()[::4]):
            cases.append(imprint.CaseSpec(f"train_{burst}_w{w:02d}_no_change", burst, pre, post, "tuning"))
    return cases


def _real_event(spec, split: str, k: int, out_dir: Path, real_root) -> FamilyEvent:
    from . import imprint

    case_dir = out_dir / "real_background" / split / spec.name
    done = case_dir / "case.json"
    if done.is_file() and json.loads(done.read_text()).get("spec", {}).get("seed") == spec.seed:
        case = _read_case(spec, case_dir)
    else:
        stack = imprint.read_opera_burst(real_burst_dir(spec.burst, real_root))
        case = imprint.write_case(spec, stack, case_dir)
    return FamilyEvent("real_background", split, k, spec.name, case.scenes_dir, case.dem, case.truth_mask,
                       case.event_time, case.pre_range, case.post_range, None, spec.regime or "",
                       spec.kind if spec.kind == "no_change" else "event", case.land_mask, case.truth_mask,
                       False, tuple(spec.polarisations), 1)


def _read_case(spec, case_dir: Path):
    """A written case, from its files (the windows and event time are derived as :func:`.imprint.write_case` does)."""
    from . import imprint

    pre = [_day(d) for d in spec.pre]
    post = [_day(d) for d in spec.post]
    doc = json.loads((case_dir / "case.json").read_text())
    event = _dt.datetime.strptime(doc["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    scenes = sorted((case_dir / "scenes").glob("*.tif"))
    times = sorted({_scene_time(p) for p in scenes})
    pre_t = [t for t in times if t.strftime("%Y-%m-%d") in {d.strftime("%Y-%m-%d") for d in pre}]
    post_t = [t for t in times if t.strftime("%Y-%m-%d") in {d.strftime("%Y-%m-%d") for d in post}]
    hour = _dt.timedelta(hours=1)
    truth = case_dir / "truth_mask.tif"
    return imprint.CaseFiles(spec, case_dir / "scenes", case_dir / "dem.tif", truth if truth.is_file() else None,
                             case_dir / "land_mask.tif", event, (min(pre_t) - hour, max(pre_t) + hour),
                             (min(post_t) - hour, max(post_t) + hour), doc.get("n_slides", 0),
                             doc.get("slide_area_m2", 0.0))


def _day(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc)


def _scene_time(path: Path) -> _dt.datetime:
    from ..sources import opera

    name = opera.parse_name(path.name)
    return name.start.replace(microsecond=0)


# --------------------------------------------------------------------------- simulated families


def _sim_event(split: str, k: int, out_dir: Path, size: int) -> FamilyEvent:
    from . import random_event_config, simulate_event

    seed = SIM_SEED_BASE[split] + k
    regime = ("earthquake", "rain")[k % 2]
    d = out_dir / "simulator" / split / f"sim_{regime}_{seed}_{size}px"
    if not (d / "event.json").is_file():
        simulate_event(d, random_event_config(seed, regime=regime, rows=size, cols=size))
    doc = json.loads((d / "event.json").read_text())
    event = _dt.datetime.strptime(doc["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    return FamilyEvent("simulator", split, k, d.name, d / "scenes", d / "dem.tif", d / "truth" / "truth_mask.tif",
                       event, pixel_size=None, regime=regime, labels=d / "truth" / "landslides.gpkg")


def _altgen_event(split: str, k: int, out_dir: Path, size: int) -> FamilyEvent:
    from . import altgen

    if split not in ALTGEN_SEED_BASE:
        raise FamilyError("the altgen family is for evaluation only: its splits are 'val' and 'test', never 'train'")
    seed = ALTGEN_SEED_BASE[split] + k
    d = out_dir / "altgen" / split / f"altgen_{seed}_{size}px"
    if not (d / "event.json").is_file():
        altgen.generate_event(d, altgen.AltConfig(seed=seed, rows=size, cols=size))
    doc = json.loads((d / "event.json").read_text())
    event = _dt.datetime.strptime(doc["event_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    return FamilyEvent("altgen", split, k, d.name, d / "scenes", d / "dem.tif", d / "truth" / "truth_mask.tif",
                       event, pixel_size=None, regime=doc.get("trigger", ""), n_passes=len(doc["passes"]))


def family_event(family: str, k: int, out_dir: str | os.PathLike, *, split: str = "test",
                 real_root: str | os.PathLike | None = None, kind: str = "imprinted",
                 size: int | None = None) -> FamilyEvent:
    """Event ``k`` (0-based) of ``family`` in ``split``, written under ``out_dir`` (reused when already there).

    ``kind`` (real_background only): ``imprinted`` (slides; the default), ``no_change`` or ``all`` (the
    benchmark's order).  ``size``: the side in pixels of simulated events (default 384 for the simulator,
    448 for altgen).
    """
    out = Path(out_dir)
    if family not in FAMILIES:
        raise FamilyError(f"family must be one of {FAMILIES}, not {family!r}")
    if split not in SPLITS:
        raise FamilyError(f"split must be one of {SPLITS}, not {split!r}")
    if k < 0:
        raise FamilyError("the event index must be 0 or more")
    if family == "simulator":
        return _sim_event(split, k, out, size or SIM_SIZE_PX)
    if family == "altgen":
        return _altgen_event(split, k, out, size or ALTGEN_SIZE_PX)
    specs = real_cases(split, kind)
    if k >= len(specs):
        raise FamilyError(f"the real_background {split} split has {len(specs)} {kind} case(s); event {k} is not one")
    return _real_event(specs[k], split, k, out, real_root)


def family_events(family: str, ks: Sequence[int], out_dir, **kw) -> list[FamilyEvent]:
    """:func:`family_event` for each index in ``ks``."""
    return [family_event(family, k, out_dir, **kw) for k in ks]


def n_events(family: str, split: str, kind: str = "imprinted") -> int | None:
    """How many events a split holds (None: as many as asked for, the simulated families)."""
    if family == "real_background":
        return len(real_cases(split, kind))
    return None
