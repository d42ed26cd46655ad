"""Training end to end on the datasets bundled with scikit-learn."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from batch_datasets import csv_bytes, dataset_frame, make_project, schema_for, write_batches

from integration.file_manager import TRAINING
from project_library.reporting import (
    AllFilesInvalid,
    NoBatchFiles,
    TrainingFailed,
)
from project_library.training import train_project

pytestmark = pytest.mark.slow  # fits models: `make test-fast` leaves it out

PNG = b"\x89PNG\r\n\x1a\n"


def _assert_saved(files, result, version):
    folder = f"models/v{version}/"
    stored = {info.key[len(folder):] for info in files.list_files(folder)}
    assert stored == set(result["artifacts"])
    for name, digest in result["artifacts"].items():
        assert hashlib.sha256(files.read_bytes(folder + name)).hexdigest() == digest
    manifest = json.loads(files.read_bytes(folder + "manifest.json"))
    assert manifest["files"] == {k: v for k, v in result["artifacts"].items()
                                 if k != "manifest.json"}
    for plot in result["plots"]:
        assert files.read_bytes(folder + plot).startswith(PNG)
    json.dumps(result, allow_nan=False)  # no numpy types, no NaN


def test_classification_default_path_with_a_broken_file(files, reporter):
    frame = dataset_frame("breast_cancer")
    project = make_project(schema_for(frame), "classification", metric="roc_auc")
    names = write_batches(files, frame, TRAINING, parts=2)
    broken = frame.head(20).copy()
    broken["mean_radius"] = "n/a?"
    files.upload_bytes(TRAINING + "batch_20240109_120000.csv", csv_bytes(broken))

    result = train_project(files, project=project, execution_id="ex1", version=1,
                           reporter=reporter)

    assert [row["algorithm"] for row in result["leaderboard"]] and \
        len(result["leaderboard"]) == 7  # 5 candidates, the ensembles of the best 2 and 3
    means = [row["cv_mean"] for row in result["leaderboard"]]
    assert means == sorted(means, reverse=True)
    assert result["algorithm"] == result["leaderboard"][0]["algorithm"]
    metrics = result["metrics"]
    assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95
    assert metrics["accuracy"] > metrics["baseline_accuracy"]
    assert metrics["labels"] == [0, 1]
    assert np.sum(metrics["confusion_matrix"]) == metrics["n_test"] == 114
    assert len(metrics["feature_importance"]) == 15
    assert set(result["plots"]) == {"plots/confusion_matrix.png", "plots/roc_curve.png",
                                    "plots/feature_importance.png"}
    _assert_saved(files, result, 1)

    assert files.exists("archive/ex1/bad/batch_20240109_120000.csv")
    assert not files.exists(TRAINING + "batch_20240109_120000.csv")
    assert all(files.exists(f"archive/ex1/good/{n}") and files.exists(TRAINING + n)
               for n in names)
    report = json.loads(files.read_bytes("archive/ex1/validation_report.json"))
    bad = [entry for entry in report["files"] if not entry["ok"]]
    assert [entry["name"] for entry in bad] == ["batch_20240109_120000.csv"]
    assert bad[0]["reasons"] == ["column 'mean_radius': 20 of 20 values are not float "
                                 "(e.g. 'n/a?')"]
    assert [v["ok"] for v in result["validation"]] == [True, True, False]
    assert result["data_fingerprint"]["rows"] == 569
    assert [f["name"] for f in result["data_fingerprint"]["files"]] == names
    assert set(result["library_versions"]) == {"python", "sklearn", "pandas", "numpy"}

    logged = [message for _, _, message in reporter.lines]
    assert any("batch_20240109_120000.csv: rejected" in m for m in logged)
    assert sum(" ± " in m and "roc_auc" in m for m in logged) == 8  # 5 + 2 ensembles + choice
    percents = [p for _, p in reporter.progress_updates]
    assert percents == sorted(set(percents)) and percents[-1] == 100


def test_regression_on_diabetes(files, reporter):
    frame = dataset_frame("diabetes")
    project = make_project(schema_for(frame), "regression", metric="mae")
    write_batches(files, frame, TRAINING, parts=3)

    result = train_project(files, project=project, execution_id="ex2", version=2,
                           reporter=reporter, candidates=["Ridge", "HistGradientBoostingRegressor"])

    metrics = result["metrics"]
    assert metrics["r2"] > 0.3
    assert metrics["rmse"] < metrics["baseline_rmse"]
    assert metrics["rmse"] == pytest.approx(metrics["mse"] ** 0.5)
    means = [row["cv_mean"] for row in result["leaderboard"]]
    assert means == sorted(means)  # lower MAE is better
    assert set(result["plots"]) == {"plots/predicted_vs_actual.png", "plots/residuals.png",
                                    "plots/feature_importance.png"}
    _assert_saved(files, result, 2)


def test_mixed_column_types_train(files, reporter):
    rng = np.random.default_rng(1)
    n = 300
    colour = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(10, 3, n)
    frame = pd.DataFrame({
        "row_id": [f"R{i}" for i in range(n)],
        "size": np.where(rng.random(n) < 0.1, np.nan, size),
        "colour": colour,
        "shop": [f"shop{i}" for i in rng.integers(0, 60, n)],
        "fresh": rng.choice(["yes", "no"], n),
        "picked": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
        "constant": 1,
        "label": np.where((colour == "red") | (size > 12), "keep", "drop"),
    })
    schema = schema_for(frame, target="label", types={
        "row_id": "category", "colour": "category", "shop": "category", "fresh": "boolean",
        "picked": "date", "label": "category"})
    project = make_project(schema, "classification", metric="f1")
    write_batches(files, frame, TRAINING, parts=2)

    result = train_project(files, project=project, execution_id="ex3", version=1,
                           reporter=reporter, candidates=["LogisticRegression",
                                                          "RandomForestClassifier"])

    assert result["metrics"]["f1_macro"] > 0.8
    features = result["features"]
    assert set(features["dropped"]) == {"row_id", "constant"}
    assert features["one_hot"] == ["colour"] and features["ordinal"] == ["shop"]
    assert features["boolean"] == ["fresh"] and features["dates"] == ["picked"]
    logged = " ".join(message for _, _, message in reporter.lines)
    assert "Not using column 'constant'" in logged and "Not using column 'row_id'" in logged


def test_time_budget_stops_after_the_first_candidate(files, reporter):
    frame = dataset_frame("wine")
    project = make_project(schema_for(frame), "classification", time_budget_seconds=1e-9)
    write_batches(files, frame, TRAINING, parts=2)
    result = train_project(files, project=project, execution_id="ex4", version=1,
                           reporter=reporter)
    assert [row["algorithm"] for row in result["leaderboard"]] == ["LogisticRegression"]
    assert any("Time budget" in message for _, _, message in reporter.lines)


def test_no_files(files, reporter):
    project = make_project(schema_for(dataset_frame("wine")), "classification")
    with pytest.raises(NoBatchFiles) as caught:
        train_project(files, project=project, execution_id="ex", version=1, reporter=reporter)
    assert caught.value.message == "no training batch files found in training_batch_files/"


def test_all_files_invalid(files, reporter):
    frame = dataset_frame("wine")
    project = make_project(schema_for(frame), "classification")
    files.upload_bytes(TRAINING + "wrong_name.csv", csv_bytes(frame))
    files.upload_bytes(TRAINING + "batch_20240101_120000.csv", b"\x89PNG\r\n\x1a\n")
    with pytest.raises(AllFilesInvalid) as caught:
        train_project(files, project=project, execution_id="ex5", version=1, reporter=reporter)
    assert caught.value.message == ("all 2 training files broke the schema; see "
                                    "archive/ex5/validation_report.json")
    assert len(files.list_files("archive/ex5/bad/")) == 2


def test_single_class_and_too_few_rows_fail_in_plain_words(files, reporter):
    frame = dataset_frame("wine")
    project = make_project(schema_for(frame), "classification")
    write_batches(files, frame[frame["target"] == 1], TRAINING, parts=1)
    with pytest.raises(TrainingFailed, match="same target value '1'"):
        train_project(files, project=project, execution_id="ex6", version=1, reporter=reporter)
    files.delete_folder(TRAINING)
    write_batches(files, frame.head(6), TRAINING, parts=1)
    with pytest.raises(TrainingFailed, match="Only 6 rows"):
        train_project(files, project=project, execution_id="ex7", version=1, reporter=reporter)
