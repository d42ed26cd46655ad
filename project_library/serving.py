"""Real-time prediction: JSON records checked against the schema a model was trained on, turned
into the typed frame its pipeline expects, and predicted."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.ensemble import (
    ExtraTreesClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.pipeline import Pipeline

from entity.model_version import ModelVersion
from entity.project import BatchSchema, Project
from exception_layer import ValidationFailed
from integration.file_manager import ProjectFiles
from project_library.compiled import RAW_PREDICT, CompiledTrees, NumericFeatures, boosting_outputs
from project_library.model_artifacts import load_verified_model
from project_library.values import FLOAT_LIMIT, json_column

MAX_ROWS = 10_000


def json_value(value):
    """A prediction or class label as plain JSON (numpy scalars unwrapped)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class ServingModel:
    """A verified, loaded model version ready to predict records."""

    version: ModelVersion
    model: object
    schema: BatchSchema
    problem_type: str
    classes: list = field(default_factory=list)

    def __post_init__(self):
        self._transformers, self._estimator = _pipeline_parts(self.model)
        self._numeric = NumericFeatures.compile(self._transformers)
        self._trees = CompiledTrees.compile(self._estimator) if RAW_PREDICT.usable else None
        self._labels = [str(json_value(c)) for c in self.classes]
        self._float_columns = frozenset(c.name for c in self.schema.columns
                                        if c.type == "float") if self.schema else frozenset()
        self._plan = RecordPlan(self.schema) if self.schema else None

    def frame(self, records: list[dict]) -> pd.DataFrame:
        """Typed frame of ``records``; raises ValidationFailed naming each wrong field."""
        return records_frame(records, self.schema, self._plan)

    def join(self, frames: list[pd.DataFrame]) -> pd.DataFrame:
        """The rows of ``frames`` (built by :meth:`frame`) as one frame, in order: what
        ``pd.concat(frames, ignore_index=True)`` gives, stacked as one array when every frame
        has the same float columns (the common case, and much cheaper)."""
        if len(frames) == 1:
            return frames[0]
        first = frames[0].columns
        if all(name in self._float_columns for name in first) and \
                all(frame.columns.equals(first) for frame in frames[1:]):
            return pd.DataFrame(np.vstack([frame.to_numpy() for frame in frames]),
                                columns=first)
        return pd.concat(frames, ignore_index=True)

    def predict(self, frame: pd.DataFrame) -> dict:
        """Predictions (and class probabilities) for every row of ``frame``.

        The same numbers as ``model.predict`` and ``model.predict_proba``, with the pipeline's
        preprocessing run once (not once per method), and for estimators whose ``predict`` is
        derived from their probabilities, one pass through the trees instead of two.
        """
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self._numeric is not None:
                features = self._numeric.transform(frame)
            else:
                features = frame
                for transformer in self._transformers:
                    features = transformer.transform(features)
            want_proba = bool(self.classes) and hasattr(self._estimator, "predict_proba")
            predicted, proba = _predict(self._estimator, features, want_proba, self._trees)
        result = {"predictions": [json_value(v) for v in predicted.tolist()]}
        if proba is not None:
            labels = self._labels
            result["probabilities"] = [
                {label: round(p, 6) for label, p in zip(labels, row, strict=True)}
                for row in proba.astype("float64", copy=False).tolist()]
        return result


def _pipeline_parts(model) -> tuple[list, object]:
    """The transformers a Pipeline applies before its final estimator, and that estimator
    (``[]`` and the model itself for anything else)."""
    if isinstance(model, Pipeline) and model.steps:
        steps = [step for _, step in model.steps[:-1] if step not in (None, "passthrough")]
        final = model.steps[-1][1]
        if final not in (None, "passthrough"):
            return steps, final
    return [], model


def _predict(estimator, features, want_proba: bool, trees: CompiledTrees | None = None
             ) -> tuple[np.ndarray, np.ndarray | None]:
    """``estimator.predict(features)`` and, if wanted, ``predict_proba(features)``.

    Where scikit-learn derives ``predict`` from the probabilities (the forests: the argmax of
    ``predict_proba``; histogram gradient boosting: both from one raw prediction), the
    estimator's own code is followed with one pass instead of two; others are called twice.
    ``trees`` (the compiled form of a histogram gradient boosting ``estimator``) computes its
    raw prediction when ``features`` is an array. The boosting shortcut uses scikit-learn's
    private raw predictions, only while the adapter ``RAW_PREDICT`` is usable.
    """
    if isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor)) \
            and RAW_PREDICT.usable:
        return boosting_outputs(estimator, features, want_proba, trees)
    if want_proba and isinstance(estimator, (RandomForestClassifier, ExtraTreesClassifier)) and \
            getattr(estimator, "n_outputs_", None) == 1:
        # ForestClassifier.predict: the class of highest mean probability.
        proba = estimator.predict_proba(features)
        return estimator.classes_.take(np.argmax(proba, axis=1), axis=0), proba
    predicted = np.asarray(estimator.predict(features))
    return predicted, (estimator.predict_proba(features) if want_proba else None)


def load_serving_model(files: ProjectFiles, project: Project,
                       version: ModelVersion) -> ServingModel:
    """Load ``version`` after checking its SHA-256 against the registry (ArtifactIntegrityError
    otherwise)."""
    model = load_verified_model(files, version)
    schema = BatchSchema.from_dict(version.schema) if version.schema else project.schema
    problem_type = version.problem_type or project.problem_type
    classes = list(getattr(model, "classes_", [])) if problem_type == "classification" else []
    return ServingModel(version=version, model=model, schema=schema, problem_type=problem_type,
                        classes=classes)


class RecordPlan:
    """What :func:`records_frame` needs to know of a schema, worked out once (a serving model
    keeps one, so a request does not derive it again)."""

    def __init__(self, schema: BatchSchema):
        self.known = {c.name: c for c in schema.columns}
        self.required = [c.name for c in schema.feature_columns]
        self.required_set = frozenset(self.required)
        self.known_set = frozenset(self.known)
        #: every feature a float: records of finite numbers need no value-by-value checks
        self.all_float = all(self.known[name].type == "float" for name in self.required)
        self.optional = [c for c in schema.columns if c.name not in self.required_set]
        self.float_names = tuple(c.name for c in schema.columns
                                 if c.name in self.required_set and c.type == "float")


def records_frame(records: list[dict], schema: BatchSchema,
                  plan: RecordPlan | None = None) -> pd.DataFrame:
    """Check ``records`` (a list of objects) against ``schema`` and build the typed frame.

    Every feature column must be present as a key (its value may be null: it is imputed);
    the target and ignored columns are optional; unknown keys are refused (a typo would
    otherwise silently become a missing value). Values are read by
    :func:`project_library.values.json_column`, with the rules of a batch file's cells.
    ``plan`` is ``RecordPlan(schema)``, when the caller keeps one.

    Raises:
        ValidationFailed: with ``details = {"rows": {index: {column: reason}}}`` or
            ``{"records": reason}``.
    """
    if not isinstance(records, list) or not records:
        raise ValidationFailed("Send a non-empty list of records (objects of column: value).",
                               details={"records": "expected a non-empty list of objects"})
    if len(records) > MAX_ROWS:
        raise ValidationFailed(f"At most {MAX_ROWS} records per request; use a batch "
                               "prediction for more.", details={"records": "too many"})
    plan = plan or RecordPlan(schema)
    known, required, required_set = plan.known, plan.required, plan.required_set
    known_set = plan.known_set
    problems: dict[str, dict[str, str]] = {}
    for index, record in enumerate(records):
        if type(record) is dict and required_set <= record.keys() <= known_set:
            continue  # every feature present, no unknown key (set comparisons, in C)
        if not isinstance(record, dict):
            problems[str(index)] = {"record": "must be an object of column: value"}
            continue
        row: dict[str, str] = {}
        for name in required:
            if name not in record:
                row[name] = "missing (send null for an unknown value)"
        for name in record:
            if name not in known:
                row[str(name)] = "not a column of this model's schema"
        if row:
            problems[str(index)] = row
    if problems:
        raise ValidationFailed(_summary(problems), details={"rows": problems})
    fast = _float_frame(records, schema, plan)
    if fast is not None:
        return fast

    columns: dict[str, object] = {}
    for spec in schema.columns:
        values = [r.get(spec.name) for r in records]
        if spec.name not in required and all(v is None for v in values):
            continue
        series, reasons = json_column(values, spec.type)
        if spec.type == "integer":
            series = pd.Series(series).round().astype("Int64")
        for index, reason in reasons.items():
            problems.setdefault(str(index), {})[spec.name] = reason
        columns[spec.name] = series
    if problems:
        raise ValidationFailed(_summary(problems), details={"rows": problems})
    if columns and all(isinstance(c, np.ndarray) for c in columns.values()):
        # Only float columns (the common case): one 2-D block, without pandas' per-column
        # construction and consolidation.
        return pd.DataFrame(np.column_stack(list(columns.values())),
                            columns=_column_index(tuple(columns)))
    return pd.DataFrame(columns)


@lru_cache(maxsize=256)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    """One shared (immutable) column index per list of names: building it costs more than
    the rest of a one-row frame."""
    return pd.Index(list(names))


def _float_frame(records: list[dict], schema: BatchSchema,
                 plan: RecordPlan) -> pd.DataFrame | None:
    """The frame of :func:`records_frame` built in one step when every column it would hold
    is a float column and every value a JSON number within range (the common case for real-time
    requests); None otherwise (the general path then decides, value by value)."""
    if not plan.all_float or not plan.float_names:
        return None
    names = plan.float_names
    sent = [spec for spec in plan.optional
            if any(record.get(spec.name) is not None for record in records)]
    if sent:  # a target or an ignored column with values: kept when it is a float column
        if any(spec.type != "float" for spec in sent):
            return None
        keep = plan.required_set | {spec.name for spec in sent}
        names = tuple(c.name for c in schema.columns if c.name in keep)
    matrix = [[record.get(name) for name in names] for record in records]
    if not {type(v) for row in matrix for v in row} <= _JSON_NUMBERS:
        return None
    try:
        array = np.array(matrix, dtype="float64")
    except OverflowError:
        return None
    if not (np.abs(array) <= FLOAT_LIMIT).all():  # NaN, infinite or out of range
        return None
    return pd.DataFrame(array, columns=_column_index(names))


_JSON_NUMBERS = frozenset((float, int))


def _summary(problems: dict[str, dict[str, str]]) -> str:
    first_row, fields = next(iter(problems.items()))
    first_field, reason = next(iter(fields.items()))
    more = sum(len(f) for f in problems.values()) - 1
    tail = f" (and {more} more problems)" if more else ""
    return f"Record {first_row}, {first_field}: {reason}{tail}."
