"""Shared pytest set-up: make the repository importable and keep Qt headless."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def offline_ee():
    """earthengine-api initialised without a server, exactly as ee.apitestcase.ApiTestCase does.

    The real library builds and serialises expression graphs from ``ee/tests/algorithms.json``; a call that
    would reach Google fails the test.
    """
    ee = pytest.importorskip("ee", reason="earthengine-api is not installed")
    from ee import apitestcase

    saved = {n: getattr(ee.data, n) for n in ("getAlgorithms", "computeValue", "_install_cloud_api_resource")}
    saved_stac = ee.deprecation._FetchDataCatalogStac
    ee.Reset()
    ee.data._install_cloud_api_resource = lambda: None
    ee.data.getAlgorithms = apitestcase.GetAlgorithms
    ee.data.computeValue = lambda x: pytest.fail("the real server was called (computeValue)")
    ee.deprecation._FetchDataCatalogStac = lambda: {}
    ee.Initialize(None, "", project="my-project")
    yield ee
    for n, f in saved.items():
        setattr(ee.data, n, f)
    ee.deprecation._FetchDataCatalogStac = saved_stac
    ee._state.reset_state()
