"""Model selection: fold layout, stage candidates and the selected-variant file."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from secom.model import LSTMConfig
from secom.selection import (
    SELECTED_CONFIG_PATH,
    STAGES,
    Variant,
    _best_choice,
    load_selected_config,
    rolling_origin_folds,
    staged_variants,
)


def test_folds_expand_and_end_at_development_stop():
    folds = rolling_origin_folds(1000, horizon=200, step=100, n_folds=3)
    assert [(f.origin, f.stop) for f in folds] == [(600, 800), (700, 900), (800, 1000)]


def test_folds_reject_origin_before_first_window():
    with pytest.raises(ValueError, match="origin"):
        rolling_origin_folds(300, horizon=200, step=100, n_folds=3)


def test_every_stage_changes_the_start_variant():
    start = Variant(name="start")
    for stage in STAGES:
        candidates = staged_variants(start, stage)
        assert candidates, stage
        for candidate in candidates:
            assert (candidate.lstm, candidate.preprocessor) != (start.lstm, start.preprocessor), candidate.name


def test_unknown_stage_rejected():
    with pytest.raises(ValueError, match="unknown stage"):
        staged_variants(Variant(name="start"), "activation")


def test_best_choice_takes_highest_mean_roc_auc():
    summary = {
        "2": {"single_roc_auc": 0.55, "ensemble_roc_auc": 0.60},
        "4": {"single_roc_auc": 0.62, "ensemble_roc_auc": 0.58},
    }
    assert _best_choice(summary) == (4, "single", 0.62)


def test_selected_config_round_trip(tmp_path):
    path = tmp_path / "selected.json"
    config = LSTMConfig(units=16, dropout=0.2, n_seeds=3)
    path.write_text(json.dumps({"preprocessor": {"correlation_threshold": 0.8}, "lstm": asdict(config), "epochs": 6}))
    selected = load_selected_config(path)
    assert selected["lstm"] == config
    assert selected["epochs"] == 6


def test_selected_config_missing_file_is_none(tmp_path):
    assert load_selected_config(tmp_path / "absent.json") is None


def test_selected_config_rejects_unknown_lstm_key(tmp_path):
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"preprocessor": {}, "lstm": {"units": 8, "layers": 2}, "epochs": 4}))
    with pytest.raises(ValueError, match="layers"):
        load_selected_config(path)


def test_selected_config_rejects_missing_epochs(tmp_path):
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"preprocessor": {}, "lstm": {}}))
    with pytest.raises(ValueError, match="epochs"):
        load_selected_config(path)


def test_committed_selected_config_is_valid():
    if not SELECTED_CONFIG_PATH.is_file():
        pytest.skip(f"{SELECTED_CONFIG_PATH} not written yet; run python -m secom.selection")
    selected = load_selected_config()
    assert selected["epochs"] >= 1
    assert isinstance(selected["lstm"], LSTMConfig)
