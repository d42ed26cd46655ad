"""The model search on the bundled datasets: quality, a reproducible held-out split, cancelling."""

from __future__ import annotations

import numpy as np
import pytest
from batch_datasets import dataset_frame, make_project, schema_for, write_batches

from integration.file_manager import TRAINING
from project_library.prediction import predict_project
from project_library.reporting import ExecutionCancelled, ListReporter
from project_library.training import holdout_split, index_digest, train_project


def _train(files, name, *, execution_id="ex", version=1, **options):
    frame = dataset_frame(name)
    project = make_project(schema_for(frame), "classification", metric="accuracy")
    if not files.list_files(TRAINING):
        write_batches(files, frame, TRAINING, parts=3)
    return train_project(files, project=project, execution_id=execution_id, version=version,
                         reporter=ListReporter(), **options)


def test_wine_end_to_end(files):
    result = _train(files, "wine")
    metrics = result["metrics"]
    assert len(result["leaderboard"]) == 4
    assert metrics["accuracy"] >= 0.94 and metrics["n_test"] == 36
    assert metrics["split"]["stratified"] and metrics["split"]["n_test"] == 36
    assert metrics["cv"]["method"].endswith("StratifiedKFold") and metrics["cv"]["n_splits"] == 5
    assert "reference_profile.json" in result["artifacts"]


def test_digits_end_to_end(files):
    result = _train(files, "digits", candidates=["LogisticRegression", "KNeighborsClassifier"])
    metrics = result["metrics"]
    assert metrics["accuracy"] >= 0.95  # 10 classes: guessing gets about 0.10
    assert metrics["baseline_accuracy"] < 0.15
    assert len(metrics["labels"]) == 10 and metrics["n_test"] == 360
    assert set(result["features"]["dropped"]) == {"pixel_0_0", "pixel_4_0", "pixel_4_7"}
    assert len(metrics["feature_importance"]) == 15


def test_the_held_out_split_is_reproducible(files, storage):
    first = _train(files, "wine", execution_id="a", version=1,
                   candidates=["LogisticRegression"])
    second = _train(files, "wine", execution_id="b", version=2,
                    candidates=["LogisticRegression"])
    assert first["split"] == second["split"] == first["metrics"]["split"]
    assert first["metrics"]["accuracy"] == second["metrics"]["accuracy"]

    # The recorded rule rebuilds the split from the target column alone.
    frame = dataset_frame("wine")
    y = frame["target"].to_numpy()
    train, test, info = holdout_split(y, "classification")
    again_train, again_test, again = holdout_split(y.copy(), "classification")
    assert np.array_equal(test, again_test) and np.array_equal(train, again_train)
    assert info == again and info["test_index_sha256"] == index_digest(test)
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(len(y)))
    assert np.unique(y[test], return_counts=True)[1].tolist() == [12, 14, 10]  # stratified
    regression = holdout_split(np.linspace(0, 1, 50), "regression")[2]
    assert not regression["stratified"] and regression["n_test"] == 10


def test_should_stop_cancels_training_between_folds(files):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 8  # validation and a few folds, then stop in the model search

    with pytest.raises(ExecutionCancelled):
        _train(files, "wine", should_stop=should_stop)
    assert not files.folder_exists("models/v1/")


def test_should_stop_cancels_prediction_between_chunks(files, monkeypatch):
    import project_library.prediction as prediction
    from entity.model_version import ModelVersion
    from integration.file_manager import PREDICTION

    result = _train(files, "wine", candidates=["LogisticRegression"])
    version = ModelVersion(project_id="p", version=1, execution_id="ex",
                           algorithm=result["algorithm"], schema=result["schema"],
                           artifacts=result["artifacts"], problem_type="classification")
    frame = dataset_frame("wine")
    write_batches(files, frame.drop(columns=["target"]), PREDICTION, parts=1)
    monkeypatch.setattr(prediction, "CHUNK_ROWS", 50)
    reporter = ListReporter()
    chunks = []

    def should_stop():
        if any(stage == "predicting" for stage, _ in reporter.progress_updates):
            chunks.append(1)
        return len(chunks) >= 2

    project = make_project(schema_for(frame), "classification")
    with pytest.raises(ExecutionCancelled):
        predict_project(files, project=project, execution_id="p1", model_version=version,
                        reporter=reporter, should_stop=should_stop)
    assert not files.exists("prediction_output/p1/predictions.csv")
