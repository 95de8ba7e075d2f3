"""Splits that do not lie: by event, or spatially blocked within an event with a buffer.

Neighbouring chips of one scene share terrain, land cover and speckle-free
structure, so a random chip split measures memorisation.  Two honest splits:

* **by event** (leave-one-event-out or explicit train/val/test event lists): an
  event's chips are all on one side;
* **spatially blocked** within an event: the grid is cut into square blocks
  (block size >= chip size); a seeded share of blocks is the test side; a chip
  is a test chip only if it lies wholly inside test blocks, and a training
  chip only if it lies wholly outside the test blocks grown by ``buffer``
  pixels.  Chips straddling the two sides are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage


class SplitError(ValueError):
    pass


@dataclass
class Split:
    kind: str  # "event" | "spatial_block"
    train: np.ndarray  # chip indices
    test: np.ndarray
    train_events: list[str] = field(default_factory=list)
    test_events: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "event":
            return (f"split by event: train on {', '.join(self.train_events)}; test on unseen "
                    f"{', '.join(self.test_events)}")
        d = self.details
        return (f"spatially blocked split within {', '.join(self.test_events)}: blocks of {d['block']} px, "
                f"{d['n_test_blocks']} of {d['n_blocks']} blocks test, buffer {d['buffer']} px")


def event_split(chip_events: Sequence[str], test_events: Sequence[str]) -> Split:
    """Train on every event not in ``test_events``; test on those."""
    ev = np.asarray(chip_events, dtype=object)
    test_set = set(test_events)
    unknown = test_set - set(ev.tolist())
    if unknown:
        raise SplitError(f"test event(s) {', '.join(sorted(unknown))} have no chip")
    is_test = np.array([e in test_set for e in ev], bool)
    train_events = sorted(set(ev[~is_test].tolist()))
    if not train_events:
        raise SplitError("no training event left")
    return Split("event", np.flatnonzero(~is_test), np.flatnonzero(is_test), train_events, sorted(test_set))


def leave_one_event_out(chip_events: Sequence[str]) -> list[Split]:
    """One split per event, that event being the test side."""
    return [event_split(chip_events, [e]) for e in sorted(set(chip_events))]


def block_test_mask(rows: int, cols: int, block: int, test_fraction: float = 0.25, seed: int = 0) -> np.ndarray:
    """Boolean (rows, cols): True on the pixels of the randomly chosen test blocks."""
    nby, nbx = -(-rows // block), -(-cols // block)
    n = nby * nbx
    k = max(1, int(round(test_fraction * n)))
    if k >= n:
        raise SplitError(f"only {n} block(s) of {block} px: too few for a blocked split; use smaller blocks")
    chosen = np.random.default_rng(seed).choice(n, k, replace=False)
    grid = np.zeros(n, bool)
    grid[chosen] = True
    return np.kron(grid.reshape(nby, nbx), np.ones((block, block), bool))[:rows, :cols]


def spatial_block_split(offsets: np.ndarray, chip: int, shape: tuple[int, int], *, block: int, buffer: int,
                        test_fraction: float = 0.25, seed: int = 0, event_id: str = "") -> Split:
    """Spatially blocked split of the chips (``offsets`` (n, 2) row/col) of ONE event grid of ``shape``."""
    if block < chip:
        raise SplitError(f"the block size ({block}) must be at least the chip size ({chip})")
    if buffer < 0:
        raise SplitError("the buffer must not be negative")
    rows, cols = shape
    test_px = block_test_mask(rows, cols, block, test_fraction, seed)
    # A square structuring element: a chip diagonally next to a test block is as close as one beside it
    # (the default cross-shaped dilation let corner-touching chips onto the training side).
    near_test = (ndimage.binary_dilation(test_px, structure=np.ones((3, 3), bool), iterations=buffer)
                 if buffer else test_px)

    # integral images: count of test / near-test pixels inside each chip window
    def window_sum(mask):
        ii = np.pad(mask.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        r, c = offsets[:, 0], offsets[:, 1]
        return ii[r + chip, c + chip] - ii[r, c + chip] - ii[r + chip, c] + ii[r, c]

    offsets = np.asarray(offsets, np.int64).reshape(-1, 2)
    n_test = window_sum(test_px)
    n_near = window_sum(near_test)
    is_test = n_test == chip * chip
    is_train = n_near == 0
    nby, nbx = -(-rows // block), -(-cols // block)
    ids = [event_id] if event_id else []
    return Split("spatial_block", np.flatnonzero(is_train), np.flatnonzero(is_test), ids, ids,
                 {"block": block, "buffer": buffer, "n_blocks": nby * nbx,
                  "n_test_blocks": int(round(test_px[::block, ::block].sum())), "seed": seed,
                  "test_fraction": test_fraction})


def windows_overlap(a: tuple[int, int], b: tuple[int, int], chip: int, gap: int = 0) -> bool:
    """True when two chip windows (top-left row, col) come closer than ``gap`` pixels (or overlap)."""
    return abs(a[0] - b[0]) < chip + gap and abs(a[1] - b[1]) < chip + gap
