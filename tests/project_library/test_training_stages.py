"""Each named stage of a training on its own, on tiny data: what it gives, what it logs, and
that it records its time."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from batch_datasets import make_project, schema_for, write_batches

from integration.file_manager import TRAINING
from project_library import training
from project_library.reporting import TrainingFailed
from project_library.training import (
    STAGE_NAMES,
    StageRun,
    ensemble,
    evaluate,
    load_and_validate,
    preprocess,
    refit,
    save,
    search,
)
from tests.project_library.reporters import ListReporter

CHEAP = ["LogisticRegression", "KNeighborsClassifier"]


def _frame(rows: int = 60) -> pd.DataFrame:
    generator = np.random.default_rng(0)
    x = generator.normal(size=rows)
    return pd.DataFrame({"x": x, "noise": generator.normal(size=rows),
                         "target": (x > 0).astype("int64")})


@pytest.fixture
def schema():
    return schema_for(_frame())


@pytest.fixture
def run():
    return StageRun(ListReporter())


def _timed(run: StageRun, name: str, stage: str) -> None:
    assert name in run.seconds and run.seconds[name] >= 0
    assert any(s == stage and line.startswith(f"Stage {STAGE_NAMES[name]} took ")
               for _, s, line in run.reporter.lines)


def _prepared(schema, run):
    frame = _frame().astype({"target": "Int64"})
    return preprocess(frame, schema=schema, problem_type="classification", run=run)


def _searched(schema, run):
    data = _prepared(schema, run)
    return data, search(data, problem_type="classification", metric="accuracy", run=run,
                        candidates=CHEAP)


def test_load_and_validate_joins_the_valid_files(files, schema, run):
    write_batches(files, _frame(), TRAINING, parts=2)
    loaded = load_and_validate(files, schema=schema, execution_id="ex", run=run)
    assert len(loaded.frame) == 60 and list(loaded.frame.columns) == ["x", "noise", "target"]
    assert loaded.fingerprint["rows"] == 60 and len(loaded.fingerprint["files"]) == 2
    assert [r.ok for r in loaded.reports] == [True, True]
    _timed(run, "load_and_validate", "loading")


def test_preprocess_holds_out_a_fifth_and_plans_the_features(schema, run):
    data = _prepared(schema, run)
    assert (len(data.X_train), len(data.X_test)) == (48, 12)
    assert "target" not in data.X_train.columns and data.classes == [0, 1]
    assert data.plan.used == ["x", "noise"] and data.split["n_test"] == 12
    _timed(run, "preprocess", "preprocessing")


def test_preprocess_refuses_too_few_rows_and_records_no_time(schema, run):
    with pytest.raises(TrainingFailed, match="at least 10"):
        preprocess(_frame(6), schema=schema, problem_type="classification", run=run)
    assert run.seconds == {}


def test_search_ranks_the_candidates(schema, run):
    _, found = _searched(schema, run)
    assert sorted(row["algorithm"] for row in found.leaderboard) == sorted(CHEAP)
    means = [row["cv_mean"] for row in found.leaderboard]
    assert means == sorted(means, reverse=True)
    assert set(found.outputs) == set(CHEAP) and len(found.folds) == 5
    _timed(run, "search", "training")


def test_ensemble_adds_the_soft_vote_of_the_best_two(schema, run):
    data, found = _searched(schema, run)
    found = ensemble(found, data, problem_type="classification", metric="accuracy", run=run)
    ensembles = [row for row in found.leaderboard
                 if row["algorithm"].startswith(training.ENSEMBLE_PREFIX)]
    assert len(ensembles) == 1 and ensembles[0]["params"]["voting"] == "soft"
    assert ensembles[0]["algorithm"] in found.pipelines
    _timed(run, "ensemble", "training")


def test_refit_fits_the_best_on_the_training_part(schema, run):
    data, found = _searched(schema, run)
    chosen = refit(found, data, metric="accuracy", run=run)
    assert chosen.algorithm == found.leaderboard[0]["algorithm"] == chosen.best["algorithm"]
    assert len(chosen.model.predict(data.X_test)) == 12
    _timed(run, "refit", "training")


def test_evaluate_measures_the_held_out_rows(schema, run):
    data, found = _searched(schema, run)
    chosen = refit(found, data, metric="accuracy", run=run)
    scored = evaluate(chosen, found, data, problem_type="classification", metric="accuracy",
                      run=run)
    assert scored.metrics["n_test"] == 12 and scored.metrics["accuracy"] >= 0.75
    assert "plots/confusion_matrix.png" in scored.plots
    _timed(run, "evaluate", "evaluating")


def test_save_writes_the_version_with_its_card(files, schema, run):
    data, found = _searched(schema, run)
    chosen = refit(found, data, metric="accuracy", run=run)
    scored = evaluate(chosen, found, data, problem_type="classification", metric="accuracy",
                      run=run)
    saved = save(files, version=1, execution_id="ex", problem_type="classification",
                 schema=schema, chosen=chosen, leaderboard=found.leaderboard, scored=scored,
                 data=data, fingerprint={"rows": 60}, run=run)
    assert {"model.joblib", "metrics.json", "manifest.json"} <= set(saved.artifacts)
    card = json.loads(files.read_bytes("models/v1/metrics.json"))
    assert card["algorithm"] == chosen.algorithm and card["data_fingerprint"] == {"rows": 60}
    _timed(run, "save", "saving")


def test_train_project_records_every_stage_time(files, schema, reporter):
    write_batches(files, _frame(), TRAINING, parts=1)
    result = training.train_project(files, project=make_project(schema, "classification"),
                                    execution_id="ex", version=1, reporter=reporter,
                                    candidates=CHEAP)
    assert list(result["metrics"]["stage_seconds"]) == list(STAGE_NAMES)
    card = json.loads(files.read_bytes("models/v1/metrics.json"))
    assert list(card["metrics"]["stage_seconds"]) == list(STAGE_NAMES)[:-1]  # save still ran


def test_rows_repeated_across_files_are_reported_and_kept_out_of_the_test_rows(files, schema,
                                                                                 run):
    """Issue 21 item 13: file 2 repeating rows of file 1 trained with no warning, and the
    repeats leaked across the held-out split (held-out accuracy 1.0 on iris)."""
    from batch_datasets import batch_name, csv_bytes

    frame = _frame()
    files.upload_bytes(TRAINING + batch_name(0), csv_bytes(frame))
    files.upload_bytes(TRAINING + batch_name(1), csv_bytes(frame.iloc[:30]))  # repeats 30
    loaded = load_and_validate(files, schema=schema, execution_id="ex", run=run)
    first, second = loaded.reports
    assert first.warnings == []
    assert second.warnings == [f"30 rows repeat rows of {batch_name(0)}; they are kept on the "
                               "training side of the held-out split, so that the test rows "
                               "are new to the model"]
    data = preprocess(loaded.frame, schema=schema, problem_type="classification", run=run)
    assert len(data.X_train) + len(data.X_test) == 90
    train_rows = set(map(tuple, data.X_train.to_numpy()))
    assert not any(tuple(row) in train_rows for row in data.X_test.to_numpy())
    assert data.split["duplicates_moved"] > 0 and data.split["n_test"] == len(data.X_test)
    assert any("repeated across the batch files" in line for _, _, line in run.reporter.lines)


def test_the_split_is_unchanged_without_repeated_rows(schema, run):
    data = _prepared(schema, run)
    assert "duplicates_moved" not in data.split and data.split["n_test"] == 12
