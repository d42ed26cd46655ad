"""Batch prediction with a trained version, and paging through the output."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from batch_datasets import csv_bytes, dataset_frame, make_project, schema_for, write_batches

from entity.model_version import ModelVersion
from exception_layer import ArtifactIntegrityError, ValidationFailed
from integration.file_manager import PREDICTION, TRAINING
from project_library.prediction import neutralise_formula, predict_project, read_output_page
from project_library.reporting import NoBatchFiles
from project_library.training import train_project
from tests.project_library.reporters import ListReporter

pytestmark = pytest.mark.slow  # fits models: `make test-fast` leaves it out


def _train(files, project, frame, candidates=("LogisticRegression",)) -> ModelVersion:
    write_batches(files, frame, TRAINING, parts=2)
    result = train_project(files, project=project, execution_id="train", version=1,
                           reporter=ListReporter(), candidates=list(candidates))
    return ModelVersion(project_id=project.id, version=1, execution_id="train",
                        algorithm=result["algorithm"], metrics=result["metrics"],
                        schema=result["schema"], artifacts=result["artifacts"],
                        library_versions=result["library_versions"],
                        problem_type=result["problem_type"])


def _output(files, result) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(files.read_bytes(result["output_path"])))


def test_one_prediction_per_input_row_with_probabilities(files, reporter):
    frame = dataset_frame("breast_cancer")
    project = make_project(schema_for(frame), "classification")
    version = _train(files, project, frame)
    unseen = frame.sample(120, random_state=3)
    names = write_batches(files, unseen.drop(columns=["target"]), PREDICTION, parts=2)
    # a third file keeps its target column (and a duplicate row, which is kept)
    with_target = pd.concat([unseen.head(10), unseen.head(1)])
    files.upload_bytes(PREDICTION + "batch_20240107_120000.csv", csv_bytes(with_target))

    kept: list[list[dict]] = []
    result = predict_project(files, project=project, execution_id="ex1",
                             model_version=version, reporter=reporter, record=kept.append)

    assert result["output_path"] == "prediction_output/ex1/predictions.csv"
    assert (result["rows"], result["files"], result["version"]) == (131, 3, 1)
    assert sum(result["summary"]["class_counts"].values()) == 131
    output = _output(files, result)
    assert len(output) == 131
    assert list(output.columns[-6:]) == ["source_file", "prediction", "probability_0",
                                         "probability_1", "model_version", "prediction_id"]
    records = {doc["_id"]: doc for chunk in kept for doc in chunk}  # one record per row
    assert list(records) == output["prediction_id"].tolist()
    first = records[output["prediction_id"][0]]
    assert (first["source"], first["execution_id"], first["version"]) == ("batch", "ex1", 1)
    assert first["output"] == output["prediction"][0]
    assert first["probabilities"]["0"] == pytest.approx(output["probability_0"][0])
    assert "target" not in first["inputs"] and len(first["inputs"]) == frame.shape[1] - 1
    assert output["target"].notna().sum() == 11  # empty for the files without it
    assert np.allclose(output["probability_0"] + output["probability_1"], 1.0, atol=1e-5)
    assert set(output["prediction"]) <= {0, 1} and (output["model_version"] == 1).all()
    assert output["source_file"].value_counts().to_dict() == {
        names[0]: 60, names[1]: 60, "batch_20240107_120000.csv": 11}
    known = output[output["target"].notna()]
    assert (known["prediction"] == known["target"]).mean() > 0.9
    assert all(files.exists(f"archive/ex1/good/{n}") for n in names)

    page = read_output_page(files, result["output_path"], page=3, page_size=50)
    assert page["total_rows"] == 131 and page["pages"] == 3 and len(page["rows"]) == 31
    assert page["columns"] == list(output.columns)
    target_index = page["columns"].index("target")
    assert page["rows"][0][target_index] is None  # NaN -> None
    assert page["rows"][-1][target_index] in (0, 1)
    assert read_output_page(files, result["output_path"], page=9, page_size=50)["rows"] == []
    with pytest.raises(ValidationFailed):
        read_output_page(files, result["output_path"], page=0, page_size=50)


def test_unseen_categories_and_formulas(files, reporter):
    rng = np.random.default_rng(0)
    n = 120
    colour = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame({"colour": colour, "weight": rng.normal(0, 1, n).round(3),
                          "label": np.where(colour == "red", "keep", "drop")})
    schema = schema_for(frame, target="label", types={"colour": "category",
                                                       "label": "category"})
    project = make_project(schema, "classification")
    version = _train(files, project, frame)
    new = pd.DataFrame({"colour": ["purple", "=HYPERLINK(\"x\")", "red", "@SUM(A1)"],
                        "weight": [-1.5, 0.2, -3.0, 1.0]})
    files.upload_bytes(PREDICTION + "batch_20240101_120000.csv", csv_bytes(new))

    result = predict_project(files, project=project, execution_id="ex2",
                             model_version=version, reporter=reporter)

    output = _output(files, result)
    assert output["colour"].tolist() == ["purple", "'=HYPERLINK(\"x\")", "red", "'@SUM(A1)"]
    assert output["weight"].tolist() == [-1.5, 0.2, -3.0, 1.0]  # numbers are not neutralised
    assert output["prediction"][2] == "keep"
    assert {"probability_keep", "probability_drop"} <= set(output.columns)


def test_neutralise_formula():
    assert neutralise_formula("=1+1") == "'=1+1"
    assert neutralise_formula("-2.5") == "-2.5"
    assert neutralise_formula("+cmd") == "'+cmd"
    assert neutralise_formula("\tx") == "'\tx"
    assert neutralise_formula(-3) == -3


def test_a_tampered_model_is_refused(files, reporter):
    frame = dataset_frame("wine")
    project = make_project(schema_for(frame), "classification")
    version = _train(files, project, frame)
    write_batches(files, frame.drop(columns=["target"]).head(10), PREDICTION, parts=1)
    files.upload_bytes("models/v1/model.joblib", b"not the model")
    with pytest.raises(ArtifactIntegrityError):
        predict_project(files, project=project, execution_id="ex3", model_version=version,
                        reporter=reporter)
    assert not files.exists("prediction_output/ex3/predictions.csv")


def test_no_prediction_files(files, reporter):
    frame = dataset_frame("wine")
    project = make_project(schema_for(frame), "classification")
    version = ModelVersion(project_id="p", version=1, execution_id="x", algorithm="x",
                           schema=project.schema.to_dict(), problem_type="classification")
    files.upload_bytes(TRAINING + "batch_20240101_120000.csv", csv_bytes(frame))
    with pytest.raises(NoBatchFiles) as caught:
        predict_project(files, project=project, execution_id="ex4", model_version=version,
                        reporter=reporter)
    assert caught.value.message == "no prediction batch files found in prediction_batch_files/"
