"""import_model.py on the real UCI archive, into an isolated model store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import bentoml
import numpy as np
import pytest

from secom.store import METADATA_FILE, MODEL_FILE, PREPROCESSOR_FILE, load_from_store
from tests.helpers import ImportedModel, read_archive_rows, run_import_model

pytestmark = pytest.mark.training


def _printed_metric(stdout: str, label: str) -> tuple[float, float]:
    """(validation, test) values of one row of the printed metrics table."""
    match = re.search(rf"^\| {re.escape(label)} \| ([0-9.]+)\S* \| ([0-9.]+)", stdout, re.MULTILINE)
    assert match, f"no {label!r} row in the printed table:\n{stdout[-3000:]}"
    return float(match.group(1)), float(match.group(2))


def test_model_stored_with_all_pieces(imported_model: ImportedModel):
    stored = bentoml.models.get(imported_model.tag)
    for name in (MODEL_FILE, PREPROCESSOR_FILE, METADATA_FILE):
        assert Path(stored.path_of(name)).is_file(), name
    assert stored.info.labels["framework"] == "keras"


def test_metadata_records_protocol(imported_model: ImportedModel):
    metadata = json.loads(Path(bentoml.models.get(imported_model.tag).path_of(METADATA_FILE)).read_text())
    assert metadata["model_tag"] == imported_model.tag
    assert metadata["window_length"] == 10
    assert metadata["feature_names"] == [str(i) for i in range(590)]
    assert metadata["data"]["archive_sha256"] == "eea568baf3c2229096d7d294cf0b096b5502bd96d92c0b80a65b84714059be8e"
    assert metadata["data"]["n_rows"] == 1567
    assert metadata["data"]["n_failures"] == 104
    periods = metadata["periods"]
    assert periods["train"]["last_row"] < periods["validation"]["first_row"]
    assert periods["validation"]["last_row"] < periods["test"]["first_row"]
    assert periods["test"]["last_row"] == 1566
    assert 0.0 <= metadata["threshold"] <= 1.0
    for library in ("keras", "bentoml", "numpy", "scikit-learn"):
        assert library in metadata["libraries"]


def test_printed_metrics_match_metadata(imported_model: ImportedModel):
    metadata = json.loads(Path(bentoml.models.get(imported_model.tag).path_of(METADATA_FILE)).read_text())
    test = metadata["metrics"]["test"]
    assert _printed_metric(imported_model.stdout, "ROC-AUC")[1] == pytest.approx(test["roc_auc"], abs=5e-5)
    assert _printed_metric(imported_model.stdout, "PR-AUC")[1] == pytest.approx(test["pr_auc"], abs=5e-5)
    assert _printed_metric(imported_model.stdout, "F1")[1] == pytest.approx(test["f1"], abs=5e-5)
    assert test["n_failures"] == metadata["periods"]["test"]["n_failures"]
    assert test["n_failures"] > 0


def test_test_period_metrics_are_honest(imported_model: ImportedModel):
    """A model scored on unseen, later lots cannot reach the leaked numbers (F1 0.78) of the design it replaces."""
    metadata = json.loads(Path(bentoml.models.get(imported_model.tag).path_of(METADATA_FILE)).read_text())
    test = metadata["metrics"]["test"]
    assert 0.0 < test["roc_auc"] < 1.0
    assert test["true_positives"] + test["false_negatives"] == test["n_failures"]
    assert test["n_windows"] == metadata["periods"]["test"]["n_windows"]


def test_loaded_bundle_scores_real_rows(imported_model: ImportedModel, archive_path: Path):
    bundle = load_from_store(imported_model.tag)
    rows = read_archive_rows(archive_path)[:25]
    probabilities = bundle.predict_proba(rows)
    assert probabilities.shape == (16,)
    assert np.all((probabilities >= 0) & (probabilities <= 1))


def test_if_missing_skips_training(imported_model: ImportedModel, archive_path: Path, bentoml_home: Path):
    result = run_import_model(bentoml_home, "--data", str(archive_path), "--if-missing", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already has" in result.stdout


def test_missing_archive_exits_with_hint(bentoml_home: Path, tmp_path: Path):
    result = run_import_model(bentoml_home, "--data", str(tmp_path / "absent.zip"), timeout=120)
    assert result.returncode == 2
    assert "SECOM_DATA" in result.stderr


def test_readme_metrics_match_run(imported_model: ImportedModel):
    """The README shows the numbers this seeded run prints; a changed model must update the README."""
    from tests.helpers import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- metrics:start -->") : readme.index("<!-- metrics:end -->")]
    for label in ("ROC-AUC", "PR-AUC", "F1"):
        assert _printed_metric(block, label) == _printed_metric(imported_model.stdout, label), label
    model_row = re.search(r"^\| lstm \| .*$", imported_model.stdout, re.MULTILINE)
    assert model_row, "no lstm row in the printed comparison table"
    assert model_row.group(0) in block


def test_if_missing_on_empty_store(tmp_path: Path):
    """On a fresh machine the store has no secom-lstm yet: --if-missing must train, not crash."""
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT, subprocess_env

    result = subprocess.run(
        [sys.executable, "-c", "import import_model; print(import_model.model_in_store())"],
        cwd=REPO_ROOT,
        env=subprocess_env(tmp_path / "empty-bentoml-home"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "None"
