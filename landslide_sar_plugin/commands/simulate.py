"""Simulate a SYNTHETIC Sentinel-1 landslide event (pre/post VV+VH stacks on both passes, DEM, truth).

Writes OUT/scenes/S1SIM_IW_<ASC|DSC>_R<orbit>_<time>.tif (float32 dB), OUT/dem.tif (30 m),
OUT/truth/{landslides.gpkg,truth_mask.tif,geometry_asc.tif,geometry_desc.tif,landcover.tif}
and OUT/event.json.  Everything is simulated and labelled synthetic; the same seed and options
give byte-identical files.  Options left out take the preset's value.
"""

from __future__ import annotations

import argparse
import sys

from ..core import simulate as sim

NAME = "simulate"
HELP = "simulate a synthetic Sentinel-1 landslide event (scenes, DEM, truth) from a seed"

_D = sim.SimulationConfig()  # the default preset's values, quoted in the help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS  # options left out keep the preset's value (and no "(default: None)")
    parser.add_argument("--out", required=True, default=s,
                        help="output folder (created; files of an earlier run there are replaced, and "
                             "simulated scenes it no longer produces are removed); required, no default")
    parser.add_argument("--seed", type=int, required=True, default=s,
                        help="random seed (integer); the same seed and options give byte-identical files; "
                             "required, no default")
    parser.add_argument("--preset", choices=sim.PRESETS, default="default",
                        help="base settings: 'default' (600x600 px, earthquake, Hokkaido site; forest levels and "
                             "date-specific change drawn from the seed), 'sample' (the shipped demo scene, "
                             f"{sim.SAMPLE_SIZE_PX}x{sim.SAMPLE_SIZE_PX} px, Hokkaido levels, the calibrated change, "
                             "0.1 dB lossy storage) or 'random' (terrain from gentle to steep, land cover, regime, "
                             "dates, geometry, site, levels and change drawn from the seed, 256x256 px)")
    parser.add_argument("--rows", type=int, default=s, help=f"grid rows (pixels); default: preset ({_D.rows})")
    parser.add_argument("--cols", type=int, default=s, help=f"grid columns (pixels); default: preset ({_D.cols})")
    parser.add_argument("--pixel-size", type=float, default=s,
                        help=f"pixel size (m); must divide the 30 m DEM spacing; default: {_D.pixel_size:g}")
    parser.add_argument("--regime", choices=sim.REGIMES, default=s,
                        help=f"landslide trigger: many small slides (earthquake) or fewer, larger, longer ones "
                             f"(rain); default: preset ({_D.regime})")
    parser.add_argument("--event", dest="event_time", default=s,
                        help="event time, ISO-8601 UTC (e.g. 2018-09-05T18:07:59Z); default: the calibration "
                             "site's event (hokkaido 2018-09-05T18:07:59Z, kaikoura 2016-11-13T11:02:56Z)")
    parser.add_argument("--n-pre", type=int, default=s,
                        help=f"pre-event acquisitions per pass (count); default: preset ({_D.n_pre})")
    parser.add_argument("--n-post", type=int, default=s,
                        help=f"post-event acquisitions per pass (count); default: preset ({_D.n_post})")
    parser.add_argument("--revisit-days", type=int, choices=(6, 12), default=s,
                        help=f"repeat interval of each track (days); default: preset ({_D.revisit_days})")
    parser.add_argument("--tracks-per-pass", type=int, choices=(1, 2), default=s,
                        help="relative orbits per pass (count; the second has a different incidence); "
                             f"default: {_D.tracks_per_pass}")
    parser.add_argument("--calibration", choices=sorted(sim.CALIBRATIONS), default=s,
                        help="site (UTM zone, event date, relative orbits) and its published forest medians "
                             "(hokkaido: VV -7.3, VH -13.2 dB; kaikoura: VV -9.9, VH -16.0 dB), which the "
                             "'default' and 'random' presets replace by per-seed draws; default: preset "
                             f"({_D.calibration})")
    parser.add_argument("--relief", dest="relief_m", type=float, default=s,
                        help=f"terrain relief amplitude (m); default: preset ({_D.relief_m:g})")
    parser.add_argument("--n-slides", type=int, default=s,
                        help="number of landslides (count); default: from the regime's density and the steep area")
    parser.add_argument("--enl", type=float, default=s,
                        help=f"speckle equivalent number of looks (dimensionless); default: {_D.enl:g} (IW GRDH)")
    parser.add_argument("--epsg", type=int, default=s,
                        help="UTM CRS of the grid (EPSG code); default: the calibration site's zone "
                             "(hokkaido 32654, kaikoura 32759)")
    parser.add_argument("--max-z-error", type=float, default=s,
                        help="lossy LERC storage of the scenes with this maximum error (dB); default: none "
                             "(lossless) for 'default'/'random', 0.1 for 'sample'")


_FIELDS = ("rows", "cols", "pixel_size", "regime", "event_time", "n_pre", "n_post", "revisit_days",
           "tracks_per_pass", "calibration", "relief_m", "n_slides", "enl", "epsg", "max_z_error")


def config_from_args(args: argparse.Namespace) -> sim.SimulationConfig:
    overrides = {name: getattr(args, name) for name in _FIELDS if hasattr(args, name)}
    cfg = sim.preset_config(args.preset, args.seed, **overrides)
    cfg.validate()
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    result = sim.simulate_event(args.out, cfg)
    n_scenes = len(result.scene_paths)
    print(f"SYNTHETIC event written to {result.out_dir} ({result.elapsed_s:.1f} s):")
    print(f"  scenes:     {result.out_dir / 'scenes'} ({n_scenes} acquisitions, VV+VH in dB)")
    print(f"  dem:        {result.dem_path}")
    print(f"  landslides: {result.landslides_path} ({result.n_landslides} slides, "
          f"{result.total_landslide_area_m2 / 1e6:.3f} km2, {result.n_visible_drop} visible drops)")
    print(f"  truth:      {result.truth_mask_path.parent}")
    print(f"  metadata:   {result.event_json_path}")
    sys.stdout.flush()
    return 0
