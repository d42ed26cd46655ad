"""Prediction: predicts the prediction batch files with a model version into an output table."""

from __future__ import annotations

from exception_layer import NotFound, ValidationFailed
from integration.file_manager import PREDICTION
from thread_layer.kinds import PREDICTION_OUTPUT, ExecutionKind, KindOption
from thread_layer.worker import project_files


def parse_version(raw, db) -> int:
    """``3`` or ``"v3"``: the model version to predict with."""
    try:
        return int(str(raw).lstrip("v"))
    except ValueError:
        raise ValidationFailed("The model version must be a number.",
                               details={"version": "Not a number."}) from None


def run(payload: dict, reporter) -> dict:
    """In the worker process: predict every prediction batch file."""
    from entity.model_version import ModelVersion
    from entity.project import Project
    from project_library.prediction import predict_project

    return predict_project(project_files(payload),
                           project=Project.from_document(payload["project"]),
                           execution_id=payload["execution_id"],
                           model_version=ModelVersion.from_document(payload["model_version"]),
                           reporter=reporter, record=getattr(reporter, "records", None))


def payload(runner, execution, project) -> dict:
    number = execution.options["version"]
    version = runner.db.model_versions.get(project.id, number)
    if version is None:
        raise NotFound(f"Model version v{number} was deleted.")
    return {"model_version": version.to_document()}


def discard(runner, execution, project, logger) -> None:
    """A failed or cancelled prediction leaves no prediction records behind."""
    runner.db.prediction_records.delete_for_execution(project.id, execution.id)


def staged(payload: dict) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """It reads its model version; it archives the prediction files and writes its output."""
    execution_id = payload["execution_id"]
    return ((f"models/v{payload['model_version']['version']}/",),
            (PREDICTION, f"archive/{execution_id}/", f"prediction_output/{execution_id}/"))


def success_lines(result: dict) -> list[str]:
    lines: list[str] = []
    if result.get("rows") is not None:
        lines.append(f"Rows predicted: {result['rows']} with model v{result.get('version')}")
    if result.get("output_path"):
        lines.append(f"Output: {result['output_path']}")
    return lines


KIND = ExecutionKind(
    name="predict", label="Prediction", run=run, needs_folder=PREDICTION, needs_model=True,
    queue="predict",
    options=(KindOption("version", {"anyOf": [{"type": "integer"}, {"type": "string"},
                                              {"type": "null"}]},
                        "predict: the model version (default: active)", parse=parse_version),),
    stages=("validating", "loading", "predicting", "saving"), produces=PREDICTION_OUTPUT,
    button="Predict", button_class="btn-success", start_form="executions/start_predict.html",
    payload=payload, discard=discard, success_lines=success_lines, staged=staged)
