"""The block pool: results in order, one state per thread, everything closed however the pass ends."""

from __future__ import annotations

import threading
import time

import pytest

from landslide_sar_plugin.core import blocks


class _States:
    def __init__(self):
        self.lock = threading.Lock()
        self.opened, self.closed, self.threads = [], [], set()

    def open(self):
        with self.lock:
            state = {"id": len(self.opened), "thread": threading.get_ident()}
            self.opened.append(state)
            self.threads.add(state["thread"])
            return state

    def close(self, state):
        with self.lock:
            self.closed.append(state["id"])


@pytest.mark.parametrize("workers", [1, 2, 3, 5])
def test_results_come_in_input_order_with_one_state_per_thread(workers):
    states = _States()

    def compute(state, item):
        assert state["thread"] == threading.get_ident()  # a state never crosses threads
        time.sleep(0.001 * ((item * 7) % 5))  # finish out of order
        return item * item

    out = list(blocks.map_blocks(range(40), compute, workers=workers, open_state=states.open,
                                 close_state=states.close))
    assert out == [i * i for i in range(40)]
    assert len(states.opened) <= workers
    assert sorted(states.closed) == [s["id"] for s in states.opened]


def test_an_error_is_raised_at_its_turn_and_every_state_is_closed():
    states = _States()

    def compute(state, item):
        if item == 6:
            raise RuntimeError("block 6 failed")
        return item

    got = []
    with pytest.raises(RuntimeError, match="block 6 failed"):
        for r in blocks.map_blocks(range(20), compute, workers=3, open_state=states.open, close_state=states.close):
            got.append(r)
    assert got == list(range(6))
    assert sorted(states.closed) == [s["id"] for s in states.opened]


def test_abandoning_the_pass_stops_the_pool_and_bounds_the_work_ahead():
    """A cancel in the writer (closing the generator) leaves no thread running and computed little ahead."""
    states = _States()
    done = []

    def compute(state, item):
        done.append(item)
        return item

    gen = blocks.map_blocks(range(1000), compute, workers=2, open_state=states.open, close_state=states.close,
                            in_flight=4)
    for r in gen:
        if r == 3:
            break
    gen.close()
    assert max(done) <= 3 + 4 + 1
    assert sorted(states.closed) == [s["id"] for s in states.opened]
    assert not [t for t in threading.enumerate() if t.name.startswith("landslide-block")]


def test_resolve_workers():
    assert blocks.resolve_workers(0) == blocks.available_cores()
    assert blocks.resolve_workers(None) == blocks.available_cores()
    assert blocks.resolve_workers(3) == 3
    with pytest.raises(ValueError, match="workers must be 0"):
        blocks.resolve_workers(-1)


def test_one_background_worker_runs_off_the_calling_thread():
    main = threading.get_ident()
    seen = set()

    def compute(state, item):
        seen.add(threading.get_ident())
        return item

    assert list(blocks.map_blocks(range(5), compute, workers=1, threaded=True)) == list(range(5))
    assert main not in seen and len(seen) == 1
    seen.clear()
    assert list(blocks.map_blocks(range(5), compute, workers=1)) == list(range(5))
    assert seen == {main}


def test_freed_memory_goes_back_to_the_system_after_every_block(monkeypatch):
    import sys

    from landslide_sar_plugin.core import blocks

    if sys.platform.startswith("linux"):
        assert blocks._TRIM is not None  # glibc's malloc_trim was found
    calls = []
    monkeypatch.setattr(blocks, "release_free_memory", lambda: calls.append(1))
    for workers in (1, 3):
        calls.clear()
        out = list(blocks.map_blocks(range(7), lambda state, i: i * i, workers=workers))
        assert out == [i * i for i in range(7)] and len(calls) == 7
    monkeypatch.undo()
    blocks.release_free_memory()  # the real one: harmless to call at any time
