"""The service class called in process, without a server: the API methods and the model they load."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import ImportedModel, as_json_rows, read_archive_rows

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def service(imported_model: ImportedModel, monkeypatch_module):
    monkeypatch_module.setenv("SECOM_MODEL_TAG", imported_model.tag)
    import importlib

    import service as service_module

    service_module = importlib.reload(service_module)
    instance = service_module.SecomLSTM()
    yield instance
    instance._stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_predict_in_process(service, archive_path: Path, imported_model: ImportedModel):
    rows = read_archive_rows(archive_path)[:15]
    response = asyncio.run(service.predict(instances=as_json_rows(rows)))
    assert response.model_tag == imported_model.tag
    assert [p.window_end_index for p in response.predictions] == list(range(9, 15))
    offline = service.bundle.predict_proba(rows)
    np.testing.assert_allclose([p.probability for p in response.predictions], offline, atol=1e-6, rtol=0)


def test_metadata_in_process(service, imported_model: ImportedModel):
    metadata = service.metadata()
    assert metadata["model_tag"] == imported_model.tag
    assert metadata["threshold_in_use"] == pytest.approx(metadata["threshold"])


def test_threshold_env_override(imported_model: ImportedModel, monkeypatch: pytest.MonkeyPatch):
    from secom.serving import configured_threshold
    from secom.store import load_from_store

    bundle = load_from_store(imported_model.tag, with_network=False)
    monkeypatch.setenv("SECOM_THRESHOLD", "0.25")
    assert configured_threshold(bundle) == 0.25
    monkeypatch.setenv("SECOM_THRESHOLD", "1.5")
    with pytest.raises(ValueError, match="SECOM_THRESHOLD"):
        configured_threshold(bundle)
    monkeypatch.delenv("SECOM_THRESHOLD")
    assert configured_threshold(bundle) == bundle.threshold
    assert "SECOM_THRESHOLD" not in os.environ
