"""Models trained elsewhere, brought in as files that run no code when they are loaded.

The format is skops (``skops.io``): a zip of JSON that names every type it rebuilds. Before
anything is built, :func:`untrusted_types` lists the types skops does not trust by default
(scikit-learn, NumPy and SciPy types are trusted; anything else, a class of the uploader's own
above all, is not); a file naming any of them is refused with that list, and never loaded. A
bare pickle (or joblib) file is refused outright: unpickling runs code.

An accepted model is checked before it becomes a version (:func:`check_on_sample`): it must
predict on sample rows of the project's schema, one output per row, of the problem type's
shape (class labels of its own ``classes_`` with probabilities summing to 1 for classification,
finite numbers for regression). It is served through :class:`ImportedModel`, which gives it the
columns it was fitted on, by name or by position.
"""

from __future__ import annotations

import json
import warnings
import zipfile

import numpy as np
import pandas as pd

from entity.project import BatchSchema, Project
from exception_layer import ObjectNotFound, ValidationFailed
from integration.file_manager import ProjectFiles
from project_library.schema_validation import check_batch_file

SKOPS_FILE = "model.skops"
#: what an uploaded model file may be, by its extension
FORMATS = {".skops": "skops"}
#: extensions refused with a reason of their own (they hold pickles)
PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".sav", ".dill")
MAX_SAMPLE_ROWS = 5_000


def format_of(name: str, field: str = "model_file") -> str:
    """The format of an uploaded model file, from its name.

    Raises:
        ValidationFailed: a pickle, or an extension that is no supported format (``field`` is
            named).
    """
    lowered = name.lower()
    if lowered.endswith(PICKLE_EXTENSIONS):
        raise ValidationFailed("Pickle files are not accepted: loading one runs whatever code "
                               "it holds.", details={field: (
                                   "Save the model with skops instead: "
                                   "skops.io.dump(model, 'model.skops').")})
    for extension, kind in FORMATS.items():
        if lowered.endswith(extension):
            return kind
    raise ValidationFailed("This is not a model file Trainyard can import.", details={
        field: f"Use a skops file ({', '.join(FORMATS)})."})


def untrusted_types(data: bytes, field: str = "model_file") -> list[str]:
    """The types a skops file names that skops does not trust by default, without building
    anything.

    Raises:
        ValidationFailed: the bytes are not a skops file (``field`` is named).
    """
    import skops.io as sio

    try:
        return sorted(sio.get_untrusted_types(data=data))
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, json.JSONDecodeError,
            UnicodeDecodeError, OSError) as exc:
        raise ValidationFailed("The model file is not a skops file.", details={
            field: f"It could not be read as one ({type(exc).__name__})."}) from None


def load_skops(data: bytes):
    """The object of a skops file that names only trusted types.

    Raises:
        ValidationFailed: the file is not a skops file, or names untrusted types (listed in
            ``details["untrusted_types"]``); nothing of it was built.
    """
    import skops.io as sio

    untrusted = untrusted_types(data)
    if untrusted:
        raise ValidationFailed(
            f"The model file holds {len(untrusted)} type(s) that are not trusted, so it was not "
            f"loaded: {', '.join(untrusted[:20])}{' ...' if len(untrusted) > 20 else ''}.",
            details={"model_file": "Only scikit-learn, NumPy and SciPy types can be imported.",
                     "untrusted_types": untrusted})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sio.loads(data)  # trusted=None: only the types skops trusts by default
    except Exception as exc:  # noqa: BLE001 - a file that names trusted types but is broken
        raise ValidationFailed("The model file could not be loaded.", details={
            "model_file": f"skops could not rebuild it ({type(exc).__name__})."}) from None


class ImportedModel:
    """An imported estimator, given the columns it was fitted on.

    A model fitted on a DataFrame (``feature_names_in_``) gets those columns by name; one
    fitted on an array gets the schema's feature columns in their order, as an array.
    """

    def __init__(self, estimator, columns: list[str], as_array: bool):
        self.estimator = estimator
        self.columns = columns
        self.as_array = as_array
        if hasattr(estimator, "classes_"):
            self.classes_ = estimator.classes_
        if hasattr(estimator, "predict_proba"):
            self.predict_proba = self._predict_proba

    def _input(self, frame: pd.DataFrame):
        selected = frame[self.columns]
        if not self.as_array:
            return selected
        return selected.astype("float64").to_numpy() if all(
            pd.api.types.is_numeric_dtype(t) for t in selected.dtypes) else \
            selected.astype(object).to_numpy()

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict(self._input(frame)))

    def _predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._input(frame)))


def imported_model(estimator, schema: BatchSchema) -> ImportedModel:
    """Wrap ``estimator`` for the project's ``schema``.

    Raises:
        ValidationFailed: it has no ``predict``, wants columns the schema does not have, or a
            number of features other than the schema's.
    """
    if not callable(getattr(estimator, "predict", None)):
        raise ValidationFailed("The imported object cannot predict.", details={
            "model_file": f"A {type(estimator).__name__} has no predict method."})
    features = [c.name for c in schema.feature_columns]
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        wanted = [str(n) for n in names]
        missing = [n for n in wanted if n not in schema.column_names]
        if missing:
            raise ValidationFailed("The model wants columns the project's schema lacks.",
                                   details={"model_file": f"Not in the schema: "
                                                          f"{', '.join(missing[:20])}."})
        return ImportedModel(estimator, wanted, as_array=False)
    count = getattr(estimator, "n_features_in_", None)
    if count is not None and int(count) != len(features):
        raise ValidationFailed("The model was fitted on another number of columns.", details={
            "model_file": f"It takes {int(count)} features; the schema has {len(features)} "
                          f"feature columns ({', '.join(features[:10])}"
                          f"{' ...' if len(features) > 10 else ''})."})
    return ImportedModel(estimator, features, as_array=True)


def check_on_sample(model: ImportedModel, frame: pd.DataFrame, schema: BatchSchema,
                    problem_type: str) -> dict:
    """Predict the sample ``frame`` and check the outputs' shape for ``problem_type``.

    Returns:
        ``{"rows", "classes", "predicted", "probabilities"}`` (the last two as arrays).

    Raises:
        ValidationFailed: it fails to predict, or its outputs do not fit the problem type.
    """
    rows = frame.head(MAX_SAMPLE_ROWS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            predicted = model.predict(rows)
            proba = model.predict_proba(rows) if hasattr(model, "predict_proba") and \
                problem_type == "classification" else None
    except Exception as exc:  # noqa: BLE001 - the uploaded model's own failure, explained
        raise ValidationFailed("The model failed to predict the sample rows.", details={
            "model_file": f"{type(exc).__name__}: {str(exc)[:300]}"}) from None
    refusal = _output_refusal(model, predicted, proba, len(rows), problem_type)
    if refusal:
        raise ValidationFailed("The model's outputs do not match the project.",
                               details={"model_file": refusal})
    classes = list(getattr(model, "classes_", [])) if problem_type == "classification" else []
    return {"rows": len(rows), "classes": classes, "predicted": predicted,
            "probabilities": proba}


def _output_refusal(model, predicted: np.ndarray, proba, rows: int,
                    problem_type: str) -> str | None:
    if predicted.ndim != 1 or len(predicted) != rows:
        return f"It gave outputs of shape {predicted.shape} for {rows} rows; one per row is needed."
    if problem_type == "regression":
        try:
            values = predicted.astype("float64")
        except (TypeError, ValueError):
            return "A regression project needs numbers; it predicted labels."
        if not np.isfinite(values).all():
            return "It predicted values that are not finite numbers."
        return None
    classes = getattr(model, "classes_", None)
    if classes is None:
        return "A classification project needs a classifier (with classes_)."
    unknown = set(map(str, np.unique(predicted))) - set(map(str, classes))
    if unknown:
        return f"It predicted labels outside its classes: {', '.join(sorted(unknown)[:5])}."
    if proba is not None:
        if proba.shape != (rows, len(classes)):
            return (f"Its probabilities have shape {proba.shape}; ({rows}, {len(classes)}) "
                    "is needed.")
        if not np.allclose(proba.sum(axis=1), 1.0, atol=1e-3):
            return "Its class probabilities do not sum to 1."
    return None


def target_labels(schema: BatchSchema, model: ImportedModel, values: pd.Series) -> np.ndarray:
    """The sample's target values in the type of the model's classes (labels given as text
    in the file may be numbers to the model)."""
    classes = getattr(model, "classes_", None)
    array = values.to_numpy()
    if classes is not None and len(classes) and not isinstance(classes[0], str):
        try:
            return array.astype(np.asarray(classes).dtype)
        except (TypeError, ValueError):
            return array
    return array.astype(str) if classes is not None else array.astype("float64")


def sample_frame(files: ProjectFiles, path: str, schema: BatchSchema, reporter) -> tuple[
        pd.DataFrame, str]:
    """The sample rows to check an imported model on: the batch file at ``path``, or the batch
    files of the folder ``path`` (up to :data:`MAX_SAMPLE_ROWS` rows), each checked against the
    schema like any batch file (the target may be absent).

    Raises:
        ValidationFailed: no file there, or none that the schema accepts (the reasons named).
    """
    names = ([entry.key for entry in files.list_files(path)] if path.endswith("/")
             else [path])
    frames: list[pd.DataFrame] = []
    refused: list[str] = []
    for name in names:
        if sum(len(f) for f in frames) >= MAX_SAMPLE_ROWS:
            break
        try:
            data = files.read_bytes(name)
        except ObjectNotFound:
            raise ValidationFailed("The sample file does not exist.", details={
                "sample_file": f"{name} is not in the project's files."}) from None
        checked = check_batch_file(name, data, schema, require_target=False)
        if checked.report.ok:
            frames.append(checked.frame)
        else:
            refused.append(f"{name}: {'; '.join(checked.report.reasons)[:300]}")
            reporter.log(f"Sample file {refused[-1]}", stage="validating", level="WARNING")
    if not frames:
        raise ValidationFailed("No sample rows to check the model on.", details={
            "sample_file": "; ".join(refused[:3]) if refused else
            f"{path} holds no batch file: upload training files, or give a sample file."})
    frame = pd.concat(frames, ignore_index=True).head(MAX_SAMPLE_ROWS)
    return frame, f"{len(frame)} rows of {path}"


def import_version(files: ProjectFiles, *, project: Project, version: int, model_path: str,
                   sample_path: str, reporter) -> dict:
    """See :func:`_import_version`; a refusal's message carries its reasons, since the
    execution's log and mail show the message alone."""
    try:
        return _import_version(files, project=project, version=version,
                               model_path=model_path, sample_path=sample_path,
                               reporter=reporter)
    except ValidationFailed as exc:
        reasons = [str(v) for k, v in (exc.details or {}).items() if k != "untrusted_types"]
        raise ValidationFailed(" ".join([exc.message.rstrip(".") + ":", *reasons])
                               if reasons else exc.message, details=exc.details) from None


def _import_version(files: ProjectFiles, *, project: Project, version: int, model_path: str,
                    sample_path: str, reporter) -> dict:
    """In the worker process: load the skops file at ``model_path`` safely, check it on the
    sample, and save it as model version ``version`` (the file byte for byte, its checksum in
    the manifest), with metrics when the sample has the target.

    Raises:
        ValidationFailed: any check failed (the reason names the field).
    """
    from project_library.drift import reference_profile
    from project_library.evaluation import classification_metrics, regression_metrics
    from project_library.model_artifacts import REFERENCE_PROFILE_FILE, save_model_version
    from project_library.preprocessing import plan_features
    from project_library.training import json_params, library_versions

    schema, problem_type = project.schema, project.problem_type
    reporter.progress("validating", 5)
    format_of(model_path)
    try:
        data = files.read_bytes(model_path)
    except ObjectNotFound:
        raise ValidationFailed("The model file does not exist.", details={
            "model_file": f"{model_path} is not in the project's files."}) from None
    reporter.log(f"Read {model_path} ({len(data):,} bytes); checking the types it names.",
                 stage="validating")
    estimator = load_skops(data)
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    reporter.log(f"Loaded a {type(estimator).__name__} ({type(final).__name__}); every type "
                 "it names is trusted.", stage="validating")
    model = imported_model(estimator, schema)
    frame, described = sample_frame(files, sample_path, schema, reporter)
    reporter.progress("evaluating", 40)
    checked = check_on_sample(model, frame, schema, problem_type)
    reporter.log(f"It predicted {checked['rows']} sample rows ({described}) with outputs of "
                 f"the right shape for {problem_type}.", stage="evaluating")
    metrics: dict = {"evaluated_on": described}
    labeled = frame[schema.target].notna().to_numpy() if schema.target in frame else None
    if labeled is not None and labeled.any():
        rows = frame[labeled]
        y = target_labels(schema, model, rows[schema.target])
        predicted = checked["predicted"][labeled]
        if problem_type == "classification":
            proba = checked["probabilities"]
            metrics.update(classification_metrics(
                checked["classes"], y, predicted, None if proba is None else proba[labeled]))
        else:
            metrics.update(regression_metrics(y, predicted.astype("float64"), y))
        shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
        reporter.log("On the sample's labeled rows: " + ", ".join(
            f"{k} {v:.4g}" for k, v in list(shown.items())[:5]) + " (rows it may have been "
            "trained on: not a held-out estimate).", stage="evaluating")
    documents = {"metrics.json": metrics,
                 "imported.json": {"format": "skops", "file": model_path,
                                   "columns": model.columns, "as_array": model.as_array}}
    try:
        documents[REFERENCE_PROFILE_FILE] = reference_profile(frame, plan_features(frame, schema))
    except (ValueError, TypeError, KeyError) as exc:  # drift checks are a bonus here
        reporter.log(f"No drift profile for this version ({type(exc).__name__}).",
                     stage="saving", level="WARNING")
    reporter.progress("saving", 80)
    artifacts = save_model_version(files, version, model_file=(SKOPS_FILE, data),
                                   documents=documents)
    reporter.log(f"Saved model version {version} ({len(artifacts)} files) in "
                 f"models/v{version}/.", stage="saving")
    return {"version": version, "algorithm": type(final).__name__, "metrics": metrics,
            "params": json_params(final), "schema": schema.to_dict(),
            "library_versions": library_versions(), "artifacts": artifacts,
            "origin": {"kind": "imported", "format": "skops", "file": model_path,
                       "sha256": artifacts[SKOPS_FILE]}}
