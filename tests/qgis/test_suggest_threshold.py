"""Suggest threshold in the dock: the review of the queue suggests a threshold, shown and applied."""

from __future__ import annotations

import re

import pytest

from .test_dock import dock, run_detection  # noqa: F401 (fixture)


def review_by_score(dock, cut):  # noqa: F811
    """Accept the candidates whose mean score is above ``cut``, reject the others (a scripted analyst)."""
    layer = dock.run_layers["candidates"]
    idx = layer.fields().indexFromName("status")
    layer.startEditing()
    n_acc = n_rej = 0
    for f in layer.getFeatures():
        accepted = f["mean_score"] > cut
        layer.changeAttributeValue(f.id(), idx, "accepted" if accepted else "rejected")
        n_acc += accepted
        n_rej += not accepted
    return n_acc, n_rej


def test_suggest_shows_the_separating_threshold_on_the_histogram_and_in_words(dock):  # noqa: F811
    run_detection(dock)
    scores = sorted(f["mean_score"] for f in dock.run_layers["candidates"].getFeatures())
    cut = (scores[len(scores) // 2] + scores[len(scores) // 2 + 1]) / 2
    n_acc, n_rej = review_by_score(dock, cut)
    current = dock.map_threshold()
    dock.suggest_button.click()
    s = dock.suggestion
    assert s is not None and s.f1 == pytest.approx(1.0) and (s.n_landslides, s.n_rejected) == (n_acc, n_rej)
    # The mean over the polygon read from the raster: the split lies between the two groups' scores.
    assert scores[len(scores) // 2] - 0.05 < s.threshold < scores[len(scores) // 2 + 1] + 0.05
    assert dock.histogram_widget.suggested == pytest.approx(s.threshold)
    assert dock.histogram_widget.suggested_label == f"suggested {s.threshold:.2f} dB"
    text = dock.suggest_info.text()
    assert re.fullmatch(rf"{s.threshold:.2f} dB separates {n_acc} accepted from {n_rej} rejected "
                        rf"\(F1 1\.00 vs {s.current_f1:.2f} at {current:.2f} dB\)", text), text
    assert s.current_f1 < 1.0
    assert dock.histogram_widget.threshold == pytest.approx(current)  # the slider has not moved yet
    dock.apply_suggestion_button.click()
    assert dock.map_threshold() == pytest.approx(s.threshold, abs=0.006)  # the spin box has 2 decimals
    ratio = dock.run_layers["a_ratio"]
    assert ratio.customProperty("landslide_sar/threshold") == pytest.approx(s.threshold, abs=0.006)


def test_apply_works_in_the_percentile_mode(dock):  # noqa: F811
    run_detection(dock)
    scores = sorted(f["mean_score"] for f in dock.run_layers["candidates"].getFeatures())
    review_by_score(dock, scores[-3] - 1e-3)
    dock.suggest_button.click()
    dock.threshold_mode.setCurrentIndex(dock.threshold_mode.findData("percentile"))
    dock.apply_suggestion_button.click()
    assert dock.threshold_spin.suffix() == " %"
    assert dock.map_threshold() == pytest.approx(dock.suggestion.threshold, abs=0.05)  # via the histogram


def test_a_review_that_cannot_suggest_says_what_is_missing(dock):  # noqa: F811
    run_detection(dock)
    dock.suggest_button.click()
    assert dock.suggestion is None and not dock.apply_suggestion_button.isEnabled()
    assert "No suggestion yet" in dock.suggest_info.text() and "reject at least one" in dock.suggest_info.text()
    review_by_score(dock, -100.0)  # everything accepted, nothing rejected
    dock.suggest_button.click()
    assert dock.suggestion is None and "0 rejected so far" in dock.status_label.text()
    assert dock.histogram_widget.suggested is None
