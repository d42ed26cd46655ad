"""Batch prediction with a trained model version, and reading the output back page by page.

The output is one CSV, ``prediction_output/<execution>/predictions.csv``: the input rows as they
were written, ``source_file``, ``prediction``, one ``probability_<class>`` column per class for
classifiers, ``model_version`` and ``prediction_id`` (the id its feedback names; each row's
prediction record is handed to ``record`` chunk by chunk). Text cells that a spreadsheet would
run as a formula get a leading apostrophe.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from entity.base import to_iso, utcnow
from entity.model_version import ModelVersion
from entity.prediction_record import new_prediction_ids, new_record
from entity.project import BatchSchema, Project
from exception_layer import ValidationFailed
from integration.file_manager import OUTPUT, PREDICTION, ProjectFiles
from project_library.batch_archive import validate_and_archive
from project_library.csv_parsing import looks_like_number
from project_library.drift import DriftAccumulator
from project_library.evaluation import json_label, json_number
from project_library.model_artifacts import (
    REFERENCE_PROFILE_FILE,
    load_verified_model,
    read_verified_file,
)
from project_library.reporting import Reporter
from project_library.training import library_versions

CHUNK_ROWS = 50_000
#: prediction records handed to ``record`` at a time
RECORD_CHUNK_ROWS = 5_000
MAX_PAGE_SIZE = 1000
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE_NAME = re.compile(r"[^\w.-]+")
# Overall progress (percent) at the start of each stage.
STAGE_START = {"validating": 0, "loading": 30, "predicting": 40, "saving": 90}


def neutralise_formula(value):
    """Prefix ``'`` to a text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``,
    ``@``, tab, carriage return); numbers such as ``-3.5`` are left alone."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) \
            and not looks_like_number(value):
        return "'" + value
    return value


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    safe = frame.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(neutralise_formula)
    safe.columns = [neutralise_formula(str(c)) for c in safe.columns]
    return safe


def _probability_column(label) -> str:
    return "probability_" + _UNSAFE_NAME.sub("_", str(json_label(label)))


def _model_schema(project: Project, model_version: ModelVersion) -> BatchSchema:
    """The columns the model was trained on, with the project's current file-name pattern."""
    if not model_version.schema:
        return project.schema
    trained = BatchSchema.from_dict(model_version.schema)
    trained.filename_pattern = project.schema.filename_pattern
    return trained


def predict_project(files: ProjectFiles, *, project: Project, execution_id: str,
                    model_version: ModelVersion, reporter: Reporter,
                    record: Callable[[list[dict]], None] | None = None) -> dict:
    """Predict every file of ``prediction_batch_files/`` with ``model_version``.

    Files are validated against the columns the model was trained on (the target may be absent
    or present) and archived like training files; the model is loaded only after its checksum
    matches the registry. Every input row of every good file gets one output row.

    Args:
        files: the project's files.
        project: the project (its file-name pattern and problem type).
        execution_id: names ``archive/<execution_id>/`` and ``prediction_output/<execution_id>/``.
        model_version: the registry entry of the model to use.
        reporter: receives log lines and progress.
        record: receives the prediction records (``entity.prediction_record``), a few
            thousand at a time; None: none are kept.

    Returns:
        ``{"output_path", "rows", "files", "version", "summary", "validation", "drift"}``;
        ``summary`` is ``{"class_counts": {label: n}}`` for classification, ``{"min", "max",
        "mean"}`` for regression. ``drift`` compares the rows with the training data's profile
        (``reference_profile.json``): ``{"rows", "features": {name: {"psi", "status"}},
        "drifted": [names], "warnings": [names]}`` with status ``ok`` (PSI < 0.1), ``warning``
        (< 0.25) or ``drift``; None for a version trained without a profile. Drifted features
        are also named in a WARNING log line.

    Raises:
        NoBatchFiles: ``prediction_batch_files/`` is empty.
        AllFilesInvalid: every file broke the schema.
        ArtifactIntegrityError: the model file is missing or was changed.
    """
    schema = _model_schema(project, model_version)
    problem_type = model_version.problem_type or project.problem_type
    progress = _Progress(reporter)

    progress("validating")
    intake = validate_and_archive(
        files, folder=PREDICTION, schema=schema, execution_id=execution_id,
        require_target=False, reporter=reporter, progress=lambda f: progress("validating", f),
        purpose="prediction")

    progress("loading")
    model = load_verified_model(files, model_version)
    trained_with = (model_version.library_versions or {}).get("sklearn")
    current = library_versions()["sklearn"]
    if trained_with and trained_with != current:
        reporter.log(f"The model was trained with scikit-learn {trained_with} and runs with "
                     f"{current}; predictions may differ slightly.", stage="loading",
                     level="WARNING")
    reporter.log(f"Loaded model version {model_version.version} ({model_version.algorithm}); "
                 "its checksum matches the registry.", stage="loading")
    drift = _drift_accumulator(files, model_version, reporter)

    progress("predicting")
    classes = list(getattr(model, "classes_", [])) if problem_type == "classification" else []
    has_proba = bool(classes) and hasattr(model, "predict_proba")
    input_columns = list(schema.column_names)
    features = [c.name for c in schema.feature_columns]
    if schema.target and not any(schema.target in b.raw.columns for b in intake.good):
        input_columns.remove(schema.target)
    total = sum(len(b.frame) for b in intake.good)
    output_path = f"{OUTPUT}{execution_id}/predictions.csv"
    all_predictions: list[np.ndarray] = []
    done = 0
    with tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024, mode="w+b") as buffer:
        header = True
        for batch in intake.good:
            for start in range(0, len(batch.frame), CHUNK_ROWS):
                typed = batch.frame.iloc[start:start + CHUNK_ROWS]
                if drift is not None:
                    drift.add(typed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predicted = model.predict(typed)
                    proba = model.predict_proba(typed) if has_proba else None
                out = batch.raw.iloc[start:start + CHUNK_ROWS].reindex(columns=input_columns)
                out["source_file"] = batch.name
                out["prediction"] = [json_label(v) for v in predicted]
                if proba is not None:
                    for index, label in enumerate(classes):
                        out[_probability_column(label)] = np.round(proba[:, index], 6)
                out["model_version"] = int(model_version.version)
                ids = new_prediction_ids(len(typed))
                out["prediction_id"] = ids
                if record is not None:
                    _record(record, project.id, int(model_version.version), execution_id, ids,
                            typed.reindex(columns=features), out["prediction"].tolist(), proba,
                            classes)
                buffer.write(_safe_frame(out).to_csv(index=False, header=header,
                                                     lineterminator="\n").encode("utf-8"))
                header = False
                all_predictions.append(np.asarray(predicted))
                done += len(typed)
                progress("predicting", done / max(total, 1))
            reporter.log(f"{batch.name}: predicted {len(batch.frame)} rows.", stage="predicting")
        progress("saving")
        size = buffer.tell()
        buffer.seek(0)
        files.upload(output_path, buffer, size=size, content_type="text/csv")
    predictions = np.concatenate(all_predictions) if all_predictions else np.array([])
    summary = _summary(predictions, problem_type)
    drift_summary = _drift_summary(drift, reporter)
    reporter.log(f"Wrote {total} predictions from {len(intake.good)} files to {output_path}.",
                 stage="saving")
    progress("saving", 1.0)
    return {"output_path": output_path, "rows": int(total), "files": len(intake.good),
            "version": int(model_version.version), "summary": summary,
            "validation": [r.to_dict() for r in intake.reports], "drift": drift_summary}


def _record(record: Callable[[list[dict]], None], project_id: str, version: int,
            execution_id: str, ids: list[str], inputs: pd.DataFrame, predicted: list,
            proba: np.ndarray | None, classes: list) -> None:
    """Hand the records of one predicted chunk to ``record``, a few thousand at a time."""
    created = to_iso(utcnow())
    labels = [str(json_label(c)) for c in classes]
    rows = [[_json_cell(v) for v in row] for row in inputs.astype(object)
            .itertuples(index=False, name=None)]
    names = [str(c) for c in inputs.columns]
    docs = []
    for i, prediction_id in enumerate(ids):
        probabilities = None if proba is None else {
            label: round(float(p), 6) for label, p in zip(labels, proba[i], strict=True)}
        docs.append(new_record(prediction_id, project_id, version, "batch", created,
                               dict(zip(names, rows[i], strict=True)), predicted[i],
                               probabilities, execution_id=execution_id))
        if len(docs) >= RECORD_CHUNK_ROWS:
            record(docs)
            docs = []
    if docs:
        record(docs)


def _drift_accumulator(files: ProjectFiles, model_version: ModelVersion,
                       reporter: Reporter) -> DriftAccumulator | None:
    """A drift accumulator on the version's verified reference profile, if it has one."""
    if REFERENCE_PROFILE_FILE not in (model_version.artifacts or {}):
        reporter.log(f"Model version {model_version.version} has no reference profile of its "
                     "training data; drift is not checked.", stage="loading")
        return None
    reference = json.loads(read_verified_file(files, model_version, REFERENCE_PROFILE_FILE))
    return DriftAccumulator(reference)


def _drift_summary(drift: DriftAccumulator | None, reporter: Reporter) -> dict | None:
    if drift is None:
        return None
    report = drift.report()
    if report["drifted"]:
        reporter.log(f"Data drift in {len(report['drifted'])} features (PSI >= 0.25 against the "
                     f"training data): {_psi_list(report, report['drifted'])}.",
                     stage="predicting", level="WARNING")
    if report["warnings"]:
        reporter.log(f"Moderate shift (PSI 0.1-0.25) in {_psi_list(report, report['warnings'])}.",
                     stage="predicting")
    if not report["drifted"] and not report["warnings"] and report["features"]:
        judged = all(f["status"] != "insufficient_data" for f in report["features"].values())
        reporter.log("No drift against the training data (every PSI below 0.1)." if judged else
                     f"Only {report['rows']} rows: too few to judge drift.", stage="predicting")
    return report


def _psi_list(report: dict, names: list[str]) -> str:
    return ", ".join(f"{name} ({report['features'][name]['psi']:.2f})" for name in names)


def _summary(predictions: np.ndarray, problem_type: str) -> dict:
    if problem_type == "classification":
        labels, counts = np.unique(predictions.astype(str) if predictions.dtype == object
                                   else predictions, return_counts=True)
        return {"class_counts": {str(json_label(label)): int(count)
                                 for label, count in zip(labels, counts, strict=True)}}
    values = predictions.astype("float64")
    if not len(values):
        return {"min": None, "max": None, "mean": None}
    return {"min": json_number(values.min()), "max": json_number(values.max()),
            "mean": json_number(values.mean())}


class _Progress:
    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.stages = list(STAGE_START)
        self.last = -1

    def __call__(self, stage: str, fraction: float = 0.0) -> None:
        index = self.stages.index(stage)
        start = STAGE_START[stage]
        end = STAGE_START[self.stages[index + 1]] if index + 1 < len(self.stages) else 100
        percent = int(start + (end - start) * min(max(fraction, 0.0), 1.0))
        if percent > self.last:
            self.last = percent
            self.reporter.progress(stage, percent)


def _json_cell(value):
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def read_output_page(files: ProjectFiles, path: str, *, page: int, page_size: int) -> dict:
    """One page of a CSV output file, for a paginated table.

    Args:
        files: the project's files.
        path: the CSV's project-relative path (e.g. ``prediction_output/<id>/predictions.csv``).
        page: the page number, from 1.
        page_size: rows per page, 1 to 1,000.

    Returns:
        ``{"columns": [...], "rows": [[...], ...], "total_rows", "page", "pages"}``; values are
        JSON-safe (missing cells are None). A page past the end has no rows.

    Raises:
        ValidationFailed: ``page`` or ``page_size`` out of range, or the file is not a CSV.
        ObjectNotFound: no such file.
    """
    if not isinstance(page, int) or page < 1:
        raise ValidationFailed("The page number starts at 1.", details={"page": "must be >= 1"})
    if not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed(f"A page holds 1 to {MAX_PAGE_SIZE} rows.",
                               details={"page_size": f"must be between 1 and {MAX_PAGE_SIZE}"})
    if not path.lower().endswith(".csv"):
        raise ValidationFailed("Only CSV files can be shown as a table.")
    total = 0
    columns: list[str] = []
    try:
        with files.open_read(path) as stream:
            for chunk in pd.read_csv(stream, usecols=[0], chunksize=100_000, dtype=str):
                total += len(chunk)
        with files.open_read(path) as stream:
            skip = range(1, 1 + (page - 1) * page_size)
            frame = pd.read_csv(stream, skiprows=skip, nrows=page_size)
        columns = [str(c) for c in frame.columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError,
            ValueError) as exc:
        raise ValidationFailed("This file cannot be read as a CSV table.") from exc
    frame = frame.astype(object)
    rows = [[_json_cell(v) for v in row] for row in frame.itertuples(index=False, name=None)]
    return {"columns": columns, "rows": rows, "total_rows": int(total), "page": page,
            "pages": max(1, math.ceil(total / page_size))}
