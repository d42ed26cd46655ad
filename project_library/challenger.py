"""Champion and challenger: the active model version and a newly trained one, scored on the same
rows.

The rows are the project's recent labeled predictions (the feedback: each record's inputs and
its actual value) when there are any, else the held-out slice of the challenger's own training
(``training.holdout_split``). On that slice the champion may have trained on some rows (the
new training data usually contains the old one), which favours the champion: a challenger is
then promoted only when it is clearly better. Which version wins, by which margin, is decided
above this layer (``thread_layer.promotion``); this module only measures.
"""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pandas as pd

from entity.model_version import ModelVersion
from entity.project import BatchSchema
from project_library import evaluation
from project_library.model_artifacts import load_verified_model
from project_library.serving import records_frame

#: the most labeled rows a comparison reads (the newest ones in the window)
MAX_FEEDBACK_ROWS = 20_000
#: fewer labeled rows than this are too few to judge on: the held-out slice is used instead
MIN_FEEDBACK_ROWS = 10


def rows_digest(ids) -> str:
    """SHA-256 of the sorted row identifiers (prediction ids, or held-out row numbers), so
    that anyone can check which rows two versions were compared on."""
    text = "\n".join(sorted(str(i) for i in ids))
    return hashlib.sha256(text.encode()).hexdigest()


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def score(model, X: pd.DataFrame, y: np.ndarray, problem_type: str,  # noqa: N803
          y_train: np.ndarray | None = None) -> dict:
    """The standard metrics of ``model`` on ``X``/``y`` (classification labels compared as
    text, so feedback sent as JSON matches the classes whatever their type)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted, proba = evaluation.predictions(model, X)
    if problem_type == "classification":
        labels = [str(evaluation.json_label(c)) for c in model.classes_]
        actual = np.array([str(evaluation.json_label(v)) for v in y], dtype=object)
        shown = np.array([str(evaluation.json_label(v)) for v in predicted], dtype=object)
        return _scalars(evaluation.classification_metrics(labels, actual, shown, proba))
    actual = np.asarray(y, dtype="float64")
    reference = actual if y_train is None else np.asarray(y_train, dtype="float64")
    return _scalars(evaluation.regression_metrics(actual, np.asarray(predicted, "float64"),
                                                  reference))


def _feedback_frame(records: list[dict], schema: BatchSchema) -> pd.DataFrame:
    """The typed frame of the records' inputs as ``schema`` reads them (columns the schema
    does not know are left out: a schema may have changed between versions)."""
    known = {c.name for c in schema.columns}
    inputs = [{k: v for k, v in (r.get("inputs") or {}).items() if k in known}
              for r in records]
    return records_frame(inputs, schema)


def compare(*, files, champion: ModelVersion, challenger_model, challenger_schema: BatchSchema,
            problem_type: str, feedback: list[dict], holdout: tuple[pd.DataFrame, np.ndarray],
            y_train: np.ndarray | None = None) -> dict:
    """Score the champion (loaded from ``files``, checksum verified) and the challenger on the
    same rows.

    Args:
        feedback: labeled prediction records (``_id``, ``inputs``, ``actual``); used when there
            are at least :data:`MIN_FEEDBACK_ROWS`.
        holdout: the challenger's held-out rows and their targets (the fallback).

    Returns:
        ``{"source": "feedback" | "holdout", "rows", "rows_sha256", "champion": {"version",
        "metrics"}, "challenger": {"metrics"}}``, or with ``"error"`` (and no metrics) when
        the champion cannot be scored (its files changed, its schema no longer fits...).
    """
    labeled = [r for r in feedback if r.get("actual") is not None]
    base = {"champion": {"version": champion.version}, "challenger": {}}
    try:
        old_model = load_verified_model(files, champion)
        old_schema = BatchSchema.from_dict(champion.schema) if champion.schema else \
            challenger_schema
        if len(labeled) >= MIN_FEEDBACK_ROWS:
            y = np.array([r["actual"] for r in labeled], dtype=object)
            if problem_type != "classification":
                y = y.astype("float64")
            old_x = _feedback_frame(labeled, old_schema)
            new_x = _feedback_frame(labeled, challenger_schema)
            base.update(source="feedback", rows=len(labeled),
                        rows_sha256=rows_digest(r["_id"] for r in labeled))
        else:
            new_x, y = holdout
            old_x = new_x
            base.update(source="holdout", rows=len(y),
                        rows_sha256=rows_digest(new_x.index.tolist()),
                        feedback_rows=len(labeled))
        base["champion"]["metrics"] = score(old_model, old_x, y, problem_type, y_train)
        base["challenger"]["metrics"] = score(challenger_model, new_x, y, problem_type, y_train)
    except Exception as exc:  # noqa: BLE001 - a comparison that fails must not fail training
        base["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return base
