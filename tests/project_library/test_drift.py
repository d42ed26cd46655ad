"""Drift: the reference profile saved at training and the PSI computed at prediction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from batch_datasets import dataset_frame, make_project, schema_for, write_batches

from entity.model_version import ModelVersion
from integration.file_manager import PREDICTION, TRAINING
from project_library import drift
from project_library.drift import drift_report, population_stability_index, reference_profile
from project_library.prediction import predict_project
from project_library.preprocessing import FeaturePlan
from project_library.training import train_project
from tests.project_library.reporters import ListReporter

pytestmark = pytest.mark.slow  # fits models: `make test-fast` leaves it out


def _trained_version(files, frame) -> tuple:
    project = make_project(schema_for(frame), "classification")
    write_batches(files, frame, TRAINING, parts=2)
    result = train_project(files, project=project, execution_id="train", version=1,
                           reporter=ListReporter(), candidates=["LogisticRegression"])
    version = ModelVersion(project_id="p", version=1, execution_id="train",
                           algorithm=result["algorithm"], schema=result["schema"],
                           artifacts=result["artifacts"], problem_type="classification")
    return project, version


def _predict(files, project, version, frame, execution_id):
    files.delete_folder(PREDICTION)
    write_batches(files, frame, PREDICTION, parts=2)
    reporter = ListReporter()
    result = predict_project(files, project=project, execution_id=execution_id,
                             model_version=version, reporter=reporter)
    return result, reporter


def test_prediction_reports_drift_of_a_shifted_column(files):
    frame = dataset_frame("breast_cancer")
    project, version = _trained_version(files, frame)
    profile = json.loads(files.read_bytes("models/v1/reference_profile.json"))
    assert profile["rows"] == 455 and len(profile["features"]) == 30
    radius = profile["features"]["mean_radius"]
    assert radius["kind"] == "numeric" and len(radius["edges"]) == 9
    assert abs(sum(radius["shares"]) - 1) < 1e-5

    features = frame.drop(columns=["target"])
    same, same_log = _predict(files, project, version, features, "p1")
    assert same["drift"]["drifted"] == [] and same["drift"]["rows"] == 569
    assert all(f["status"] == "ok" for f in same["drift"]["features"].values())
    assert not any(level == "WARNING" and "drift" in message.lower()
                   for level, _, message in same_log.lines)

    shifted = features.copy()
    shifted["mean_texture"] += 3 * shifted["mean_texture"].std()
    moved, moved_log = _predict(files, project, version, shifted, "p2")
    assert moved["drift"]["drifted"] == ["mean_texture"]
    assert moved["drift"]["features"]["mean_texture"]["status"] == "drift"
    assert moved["drift"]["features"]["mean_texture"]["psi"] > 1
    assert moved["drift"]["features"]["mean_radius"]["status"] == "ok"
    warnings = [m for level, _, m in moved_log.lines if level == "WARNING"]
    assert any("drift" in m.lower() and "mean_texture" in m for m in warnings)
    json.dumps(moved, allow_nan=False)


def test_drift_report_on_categories_and_thresholds():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 1000,
                                                   p=[0.5, 0.3, 0.2]),
                              "size": rng.normal(10, 2, 1000)})
    plan = FeaturePlan(numeric=["size"], one_hot=["colour"])
    profile = reference_profile(reference, plan)
    assert profile["features"]["colour"]["values"] == ["red", "green", "blue"]

    current = pd.DataFrame({"colour": rng.choice(["red", "green", "purple"], 500,
                                                 p=[0.2, 0.3, 0.5]),
                            "size": rng.normal(10, 2, 500)})
    report = drift_report(profile, current)
    assert report["drifted"] == ["colour"]
    assert report["features"]["size"]["status"] == "ok"

    tiny = drift_report(profile, current.head(10))
    assert tiny["drifted"] == [] and tiny["features"]["colour"]["status"] == "insufficient_data"

    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert 0.1 <= population_stability_index([0.5, 0.5], [0.7, 0.3]) < 0.25


def test_binned_tests_see_a_shift_and_not_a_sample_of_the_same_data():
    rng = np.random.default_rng(3)
    training = pd.DataFrame({"x": rng.normal(0, 1, 4000), "c": rng.choice(["a", "b"], 4000)})
    profile = drift.reference_profile(training, FeaturePlan(numeric=["x"], one_hot=["c"]))
    same, shifted = rng.normal(0, 1, 800), rng.normal(0.5, 1, 800)
    x = profile["features"]["x"]
    calm = drift.binned_test(x, 4000, drift.bin_counts(x, list(same)))
    moved = drift.binned_test(x, 4000, drift.bin_counts(x, list(shifted)))
    assert calm["test"] == "ks" and calm["p_value"] > 0.01
    assert moved["p_value"] < 1e-6 and moved["statistic"] > calm["statistic"]
    c = profile["features"]["c"]
    skewed = drift.binned_test(c, 4000, drift.bin_counts(c, ["a"] * 700 + ["b"] * 100))
    fair = drift.binned_test(c, 4000, drift.bin_counts(c, list(rng.choice(["a", "b"], 800))))
    assert skewed["test"] == "chi2" and skewed["p_value"] < 1e-6 and fair["p_value"] > 0.01
    assert drift.binned_test(x, 4000, np.zeros(len(x["shares"])))["p_value"] is None


def test_target_profile_bins_classes_and_numbers():
    classes = drift.target_profile(np.array(["yes"] * 30 + ["no"] * 10), "classification")
    assert classes["kind"] == "categorical" and classes["values"] == ["yes", "no"]
    assert classes["shares"][:2] == [0.75, 0.25]
    numbers = drift.target_profile(np.arange(100.0), "regression")
    assert numbers["kind"] == "numeric" and len(numbers["edges"]) == 9
    assert drift.target_profile(np.array([]), "regression") is None
