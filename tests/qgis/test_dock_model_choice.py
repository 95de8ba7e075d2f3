"""The dock says which model ran and why (issue 11), next to the method selector.  SYNTHETIC sample scene."""

from __future__ import annotations

import pytest

from .conftest import wait_until
from .test_dock import dock  # noqa: F401 (fixture)


def test_the_dock_says_which_model_ran_on_what(dock, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    from landslide_sar_plugin.gui.dock import DEFAULT_MODEL

    assert dock.model_choice_label.text() == ""
    dock.method_combo.setCurrentIndex(dock.method_combo.findData("model"))
    dock.model_file.setFilePath(str(DEFAULT_MODEL))
    dock.detect_button.click()
    wait_until(lambda: dock.task is None)
    assert dock.run_result is not None, dock.status_label.text()
    text = dock.model_choice_label.text()
    assert text.startswith("Model ran: landslide_unet on VH+VV") and "both orbit passes seen jointly" in text
    assert text.endswith(dock.run_result.run_info["model_choice"]["reason"])
