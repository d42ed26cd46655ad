"""Training a project's model from its training batch files.

Training runs as named stages, each a function of its own that logs the seconds it took:
load and validate, preprocess, search, ensemble, refit, evaluate, save (see
:func:`train_project`). The execution shows them as validating -> loading -> preprocessing ->
training (search, ensemble, refit) -> evaluating -> saving. A test split (20 %) is held out
first; candidate algorithms are compared by cross-validation on the rest with the project's
selection metric; the best is refitted on the training part and measured on the held-out rows.

Both the held-out split and the cross-validation folds are seeded, so the same data gives the same
split every time; the rule is recorded in the metrics (``metrics["split"]``, ``metrics["cv"]``) so
that anyone can rebuild it (see :func:`holdout_split`).

Rows in time order (a date column that rises with the row order: a log, a daily series) are
split by time instead: the latest 20 % are held out and the folds are contiguous blocks, because
fresh rows come after the training rows; a shuffled split there put each held-out day next to its
neighbours in the training part and measured interpolation, not prediction (issue 26: held-out
0.705 against 0.565 on fresh rows). The estimates carry intervals: a bootstrap interval of the
held-out score and a t interval of the cross-validated one (:func:`evaluate`).
"""

from __future__ import annotations

import dataclasses
import math
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sklearn
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from entity.project import LOWER_IS_BETTER, BatchSchema, Project
from integration.file_manager import TRAINING, ProjectFiles
from project_library import drift, evaluation
from project_library.batch_archive import (
    add_to_validation_report,
    row_keys,
    validate_and_archive,
)
from project_library.model_artifacts import (
    REFERENCE_PROFILE_FILE,
    save_model_version,
    sha256_hex,
    version_folder,
)
from project_library.preprocessing import (
    FeaturePlan,
    build_preprocessor,
    plan_features,
    time_order_column,
)
from project_library.reporting import Reporter, TrainingFailed

MIN_ROWS = 10
#: soft-voting ensembles of the best 2 and 3 candidates compete with the single models
ENSEMBLE_SIZES = (2, 3)
ENSEMBLE_PREFIX = "Ensemble: "
TEST_SIZE = 0.2
MAX_KNN_ROWS = 50_000
LARGE_DATA_ROWS = 100_000
RANDOM_STATE = 0
#: share of the model search's time that the permutation importance may take (at least 0.1 s)
IMPORTANCE_BUDGET_SHARE = 0.05
MIN_IMPORTANCE_SECONDS = 0.1
#: selection metric -> (scikit-learn scorer for binary/regression, for multiclass)
SCORERS = {
    "accuracy": ("accuracy", "accuracy"),
    "f1": ("f1_macro", "f1_macro"),
    "roc_auc": ("roc_auc", "roc_auc_ovr"),
    "rmse": ("neg_root_mean_squared_error",) * 2,
    "mae": ("neg_mean_absolute_error",) * 2,
    "r2": ("r2", "r2"),
    "balanced_accuracy": ("balanced_accuracy", "balanced_accuracy"),
    "log_loss": ("neg_log_loss", "neg_log_loss"),
    "mape": ("neg_mean_absolute_percentage_error",) * 2,
}
#: the confidence level of the intervals of the estimates
INTERVAL_LEVEL = 0.95
# Overall progress (percent) at the start of each stage.
STAGE_START = {"validating": 0, "loading": 20, "preprocessing": 25, "training": 30,
               "evaluating": 80, "saving": 92}


@dataclass
class Candidate:
    name: str
    estimator: object
    needs_scaling: bool


def candidate_models(problem_type: str, rows: int) -> list[Candidate]:
    """The algorithms tried for ``problem_type`` on ``rows`` rows (KNN only up to 50,000)."""
    if problem_type == "classification":
        found = [
            Candidate("LogisticRegression", LogisticRegression(max_iter=1000), True),
            Candidate("RandomForestClassifier", RandomForestClassifier(
                n_estimators=200, n_jobs=1, random_state=RANDOM_STATE), False),
            Candidate("HistGradientBoostingClassifier", HistGradientBoostingClassifier(
                random_state=RANDOM_STATE), False),
            Candidate("LGBMClassifier", _lightgbm("classification"), False),
        ]
        if rows <= MAX_KNN_ROWS:
            found.append(Candidate("KNeighborsClassifier", KNeighborsClassifier(n_jobs=1), True))
        return found
    return [
        Candidate("Ridge", Ridge(), True),
        Candidate("RandomForestRegressor", RandomForestRegressor(
            n_estimators=200, n_jobs=1, random_state=RANDOM_STATE), False),
        Candidate("HistGradientBoostingRegressor", HistGradientBoostingRegressor(
            random_state=RANDOM_STATE), False),
        Candidate("LGBMRegressor", _lightgbm("regression"), False),
    ]


def _lightgbm(problem_type: str):
    """LightGBM with the worker's thread cap (one thread, as ``n_jobs=1`` everywhere here),
    seeded and silent; imported here so that a process that never trains needs no LightGBM."""
    import lightgbm

    kind = lightgbm.LGBMClassifier if problem_type == "classification" else lightgbm.LGBMRegressor
    return kind(n_estimators=200, learning_rate=0.05, num_leaves=31, subsample=0.8,
                subsample_freq=1, colsample_bytree=0.8, n_jobs=1, random_state=RANDOM_STATE,
                verbose=-1)


def json_params(estimator) -> dict:
    """The estimator's own parameters as JSON-safe values."""
    params = {}
    for key, value in sorted(estimator.get_params(deep=False).items()):
        if isinstance(value, (np.generic,)):
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        if value is None or isinstance(value, (bool, int, float, str)):
            params[key] = value
        else:
            params[key] = repr(value)
    return params


def model_params(model) -> dict:
    """The chosen estimator's parameters: of a candidate pipeline's model, or of each member
    of an ensemble (``{"voting", "members": {name: params}}``)."""
    if isinstance(model, (VotingClassifier, VotingRegressor)):
        return {"voting": getattr(model, "voting", "mean"),
                "members": {name: json_params(pipeline.named_steps["model"])
                            for name, pipeline in model.estimators}}
    return json_params(model.named_steps["model"])


def library_versions() -> dict:
    """The versions a pickled model depends on."""
    return {"python": platform.python_version(), "sklearn": sklearn.__version__,
            "pandas": pd.__version__, "numpy": np.__version__}


class _Progress:
    """Monotonic progress reports, mapped per stage onto the overall percentage."""

    def __init__(self, reporter: Reporter, starts: dict[str, int]):
        self.reporter = reporter
        self.starts = starts
        self.stages = list(starts)
        self.last = -1

    def __call__(self, stage: str, fraction: float = 0.0) -> None:
        start = self.starts[stage]
        index = self.stages.index(stage)
        end = self.starts[self.stages[index + 1]] if index + 1 < len(self.stages) else 100
        percent = int(start + (end - start) * min(max(fraction, 0.0), 1.0))
        if percent > self.last:
            self.last = percent
            self.reporter.progress(stage, percent)


def _target_array(values: pd.Series, problem_type: str, target: str, target_type: str):
    if problem_type == "regression":
        if target_type not in ("integer", "float"):
            raise TrainingFailed(
                f"The target '{target}' is a {target_type} column; a regression predicts "
                "numbers. Make the target numeric or make the project a classification.")
        return values.astype("float64").to_numpy()
    if target_type == "integer":
        return values.astype("int64").to_numpy()
    if target_type == "boolean":
        return values.astype(bool).to_numpy()
    if target_type == "float":
        return values.astype("float64").to_numpy()
    if target_type == "date":
        raise TrainingFailed(f"The target '{target}' is a date column; it cannot be a class.")
    return values.astype(str).to_numpy(dtype=object)


def _can_stratify(y: np.ndarray, test_size: float) -> bool:
    _, counts = np.unique(y, return_counts=True)
    return counts.min() >= 2 and len(y) * test_size >= len(counts) \
        and len(y) * (1 - test_size) >= len(counts)


def holdout_split(y: np.ndarray, problem_type: str, keys: np.ndarray | None = None,
                  order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Split rows ``0..len(y)-1`` into the training part and the held-out test part.

    Deterministic: ``sklearn.model_selection.train_test_split`` with ``test_size=0.2``,
    ``random_state=0``, ``shuffle=True``, stratified by ``y`` for a classification whose smallest
    class has at least 2 rows (and where every class fits in both parts). The rows are numbered in
    the order training loads them: the valid batch files in the order of
    ``data_fingerprint["files"]``, each file's rows in file order, rows without a target dropped.

    With ``order`` (one time stamp per row, as float nanoseconds, NaN where missing: rows in
    time order, :func:`preprocessing.time_order_column`), the split is by time instead: the rows
    sorted by time stamp (a missing one takes the row before it; ties in row order), the latest
    20 % held out, moved forward so that rows of the same time stamp stay on one side. Both
    parts are then in time order (``info["method"] == "time-ordered"``).

    With ``keys`` (one per row, equal for equal rows: :func:`batch_archive.row_keys`), a test
    row equal to a training row moves to the training part (after the training part's rows),
    so that repeated rows never sit on both sides; ``info["duplicates_moved"]`` counts them.

    Returns:
        ``(train_index, test_index, info)``; ``info`` is the JSON-safe rule plus
        ``test_index_sha256``, the SHA-256 of the sorted test indices as little-endian int64, to
        check a rebuilt split against.
    """
    if order is not None:
        train_index, test_index = _time_split(order)
        stratified = False
        info = {"method": "time-ordered", "test_size": TEST_SIZE,
                "order": "by the time stamp, a missing one taking the row's before, ties in "
                         "row order; the latest rows held out"}
    else:
        stratified = problem_type == "classification" and _can_stratify(y, TEST_SIZE)
        train_index, test_index = train_test_split(
            np.arange(len(y)), test_size=TEST_SIZE, random_state=RANDOM_STATE, shuffle=True,
            stratify=y if stratified else None)
        info = {"method": "sklearn.model_selection.train_test_split", "test_size": TEST_SIZE,
                "random_state": RANDOM_STATE, "shuffle": True}
    moved = 0
    if keys is not None:
        in_training = np.isin(keys[test_index], keys[train_index])
        if in_training.any() and not in_training.all():
            moved = int(in_training.sum())
            train_index = np.concatenate([train_index, test_index[in_training]])
            test_index = test_index[~in_training]
    info.update({"stratified": bool(stratified),
                 "rows": len(y), "n_train": len(train_index), "n_test": len(test_index),
                 "row_order": "valid batch files in data_fingerprint order, rows in file order, "
                              "rows without a target dropped",
                 "test_index_sha256": index_digest(test_index)})
    if moved:
        info["duplicates_moved"] = moved
    return train_index, test_index, info


def _time_split(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stamps = pd.Series(order, dtype="float64").ffill().bfill().to_numpy()
    sorted_rows = np.argsort(stamps, kind="stable")
    cut = len(stamps) - max(1, int(math.ceil(len(stamps) * TEST_SIZE)))
    sorted_stamps = stamps[sorted_rows]
    # rows of the boundary's time stamp all go to the test part (unless that empties training)
    while cut > 1 and sorted_stamps[cut - 1] == sorted_stamps[cut]:
        cut -= 1
    return sorted_rows[:cut], sorted_rows[cut:]


def index_digest(index: np.ndarray) -> str:
    """SHA-256 of the sorted row indices as little-endian int64 (identifies a split)."""
    return sha256_hex(np.sort(np.asarray(index)).astype("<i8").tobytes())


def _cv_splitter(problem_type: str, y: np.ndarray, time_ordered: bool = False):
    folds = 3 if len(y) > LARGE_DATA_ROWS else 5
    folds = max(2, min(folds, len(y)))
    if time_ordered:
        # contiguous blocks of the time-ordered training part: each fold is scored on a
        # stretch of time, not on days whose neighbours it was fitted on
        return KFold(n_splits=folds, shuffle=False)
    if problem_type == "classification":
        smallest = int(np.unique(y, return_counts=True)[1].min())
        if smallest >= 2:
            return StratifiedKFold(n_splits=min(folds, smallest), shuffle=True,
                                   random_state=RANDOM_STATE)
    return KFold(n_splits=folds, shuffle=True, random_state=RANDOM_STATE)


def _cv_info(splitter) -> dict:
    shuffled = bool(getattr(splitter, "shuffle", True))
    return {"method": f"sklearn.model_selection.{type(splitter).__name__}",
            "n_splits": splitter.get_n_splits(), "shuffle": shuffled,
            "random_state": RANDOM_STATE if shuffled else None,
            "on": "the training part" if shuffled else "the training part in time order"}


@dataclass
class FoldOutput:
    """What one candidate predicted for the held-back rows of each fold (None where a fold
    failed): class probabilities (with their ``classes``) or values."""

    predictions: list[np.ndarray | None]
    classes: list[np.ndarray | None]


def _cross_validate(pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, folds: list,  # noqa: N803
                    scorer) -> tuple[np.ndarray, np.ndarray, list[str], FoldOutput]:
    """Fit and score ``pipeline`` on each fold; NaN for a fold whose fit or scoring failed.

    Returns the scores, the fit seconds, the failure messages and the fold predictions
    (probabilities for a classifier that has them), from which ensembles are scored without
    fitting anything again.
    """
    scores = np.full(len(folds), np.nan)
    fit_seconds = np.zeros(len(folds))
    failures: list[str] = []
    output = FoldOutput([None] * len(folds), [None] * len(folds))
    for index, (train, test) in enumerate(folds):
        began = time.perf_counter()
        try:
            fitted = clone(pipeline).fit(X.iloc[train], y[train])
            fit_seconds[index] = time.perf_counter() - began
            held_back = X.iloc[test]
            scores[index] = scorer(fitted, held_back, y[test])
            if hasattr(fitted, "predict_proba"):
                output.predictions[index] = fitted.predict_proba(held_back)
                output.classes[index] = fitted.classes_
            elif not hasattr(fitted, "classes_"):
                output.predictions[index] = np.asarray(fitted.predict(held_back), dtype=float)
        except (ValueError, TypeError, ArithmeticError, IndexError, KeyError) as exc:
            failures.append(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    return scores, fit_seconds, failures, output


class _Predicted(BaseEstimator):
    """Stands in for a fitted model whose answers on the scored rows are already known, so
    that a scikit-learn scorer computes the selection metric from them unchanged."""

    def __init__(self, answers: np.ndarray, classes: np.ndarray | None = None):
        self.answers, self.classes = answers, classes
        if classes is not None:
            self.classes_ = classes

    def predict_proba(self, X):  # noqa: N803 - the answers are for exactly these rows
        return self.answers

    def predict(self, X):  # noqa: N803
        if self.classes is None:
            return self.answers
        # VotingClassifier(voting="soft").predict: the class of highest mean probability
        return self.classes[np.argmax(self.answers, axis=1)]


class _PredictedClasses(ClassifierMixin, _Predicted):
    pass


class _PredictedValues(RegressorMixin, _Predicted):
    pass


def _ensemble_scores(members: list[str], outputs: dict[str, FoldOutput], y: np.ndarray,
                     folds: list, scorer) -> np.ndarray | None:
    """Cross-validated scores of the soft-voting ensemble of ``members``, from their fold
    predictions: per fold, the mean of their probabilities (or values), which is exactly what
    a VotingClassifier (soft) or VotingRegressor fitted on that fold predicts. None when a
    member lacks a fold's predictions or the members disagree on the classes."""
    scores = np.full(len(folds), np.nan)
    for index, (_, test) in enumerate(folds):
        answers = [outputs[m].predictions[index] for m in members]
        classes = [outputs[m].classes[index] for m in members]
        if any(a is None for a in answers):
            return None
        if classes[0] is not None and not all(c is not None and np.array_equal(c, classes[0])
                                              for c in classes):
            return None
        mean = np.mean(answers, axis=0)
        stand_in = (_PredictedClasses(mean, classes[0]) if classes[0] is not None
                    else _PredictedValues(mean))
        scores[index] = scorer(stand_in, np.empty((len(test), 0)), y[test])
    return scores


def ensemble_model(problem_type: str, members: dict[str, Pipeline]):
    """The unfitted soft-voting ensemble of ``members`` (name -> candidate pipeline)."""
    estimators = [(name, clone(pipeline)) for name, pipeline in members.items()]
    if problem_type == "classification":
        return VotingClassifier(estimators, voting="soft")
    return VotingRegressor(estimators)


def _warning_summary(caught: list) -> str:
    kinds = sorted({w.category.__name__ for w in caught})
    return f" ({len(caught)} warnings: {', '.join(kinds)})" if kinds else ""


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class StageRun:
    """What every training stage reports to: log lines and progress, and the seconds each
    named stage took (``seconds``, in stage order).

    A stage times itself with :meth:`timed`: when it ends, its time goes into ``seconds`` and
    one log line. A test runs one stage alone with a ``StageRun`` around its own reporter.
    """

    def __init__(self, reporter: Reporter, *, progress: Callable[..., None] | None = None):
        self.reporter = reporter
        self.progress = progress or (lambda stage, fraction=0.0: None)
        #: when the training started (the time budget counts from here)
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        """One log line of the execution stage ``stage``."""
        self.reporter.log(message, stage=stage, level=level)

    def doing(self, what: str) -> None:
        """Tell the reporter what runs now (a sandbox limit that stops it names it)."""
        note = getattr(self.reporter, "doing", None)
        if note is not None:
            note(what)

    @contextmanager
    def timed(self, name: str, stage: str):
        """Time the named stage ``name`` (one of :data:`STAGE_NAMES`), which reports under the
        execution stage ``stage``; a stage that raises records nothing."""
        began = time.monotonic()
        yield
        took = time.monotonic() - began
        self.seconds[name] = round(took, 3)
        self.log(f"Stage {STAGE_NAMES[name]} took {took:.2f} s.", stage=stage)


#: the named stages of a training, in order: name -> its words in the log
STAGE_NAMES = {"load_and_validate": "load and validate", "preprocess": "preprocess",
               "search": "search", "ensemble": "ensemble", "refit": "refit",
               "evaluate": "evaluate", "save": "save"}


@dataclass
class LoadedData:
    """The valid training rows (every batch file that passed, in fingerprint order)."""

    frame: pd.DataFrame
    fingerprint: dict
    #: one validation report per batch file, valid or not
    reports: list


@dataclass
class PreparedData:
    """The held-out split of the rows with a target, and the plan of the feature columns."""

    X_train: pd.DataFrame  # noqa: N815 - scikit-learn's naming
    X_test: pd.DataFrame  # noqa: N815
    y_train: np.ndarray
    y_test: np.ndarray
    #: the classes of a classification (sorted), [] for a regression
    classes: list
    plan: FeaturePlan
    #: the held-out rule of :func:`holdout_split`
    split: dict


@dataclass
class SearchResult:
    """The cross-validated candidates (and later the ensembles), best first."""

    leaderboard: list[dict]
    #: algorithm name -> its unfitted pipeline (or ensemble)
    pipelines: dict[str, object]
    #: fold predictions of the candidates that succeeded on every fold
    outputs: dict[str, FoldOutput]
    splitter: object
    folds: list
    scorer: object


@dataclass
class RefittedModel:
    """The chosen model, fitted on the training part."""

    algorithm: str
    model: object
    #: its leaderboard row
    best: dict


@dataclass
class Evaluation:
    """The held-out metrics and the plots (file name -> PNG bytes)."""

    metrics: dict
    plots: dict[str, bytes]


@dataclass
class SavedVersion:
    """What saving model version wrote (``artifacts``: file name -> SHA-256)."""

    artifacts: dict
    params: dict
    features: dict
    library_versions: dict


#: the most classes a version's data summary counts (the rest are summed as "other")
SUMMARY_CLASSES = 50


def data_summary(frame: pd.DataFrame, schema: BatchSchema) -> dict:
    """What a model card says of the training data beside its rows: ``class_balance`` (rows
    per target value, for a target with at most :data:`SUMMARY_CLASSES` values) and
    ``period`` (the first and last day of the schema's first date column), when they apply."""
    summary: dict = {}
    target = schema.target
    if target in frame.columns:
        counts = frame[target].dropna().astype(str).value_counts()
        if 0 < len(counts) <= SUMMARY_CLASSES:
            summary["class_balance"] = {str(k): int(v) for k, v in counts.items()}
    dates = [c.name for c in schema.columns if c.type == "date" and c.name in frame.columns]
    if dates:
        values = pd.to_datetime(frame[dates[0]], errors="coerce").dropna()
        if len(values):
            summary["period"] = {"column": dates[0], "from": values.min().date().isoformat(),
                                 "to": values.max().date().isoformat()}
    return summary


def load_and_validate(files: ProjectFiles, *, schema: BatchSchema, execution_id: str,
                      run: StageRun) -> LoadedData:
    """Validate every training batch file (the bad ones are archived with their reasons) and
    join the valid ones into one frame.

    Raises:
        NoBatchFiles, AllFilesInvalid.
    """
    with run.timed("load_and_validate", "loading"):
        run.progress("validating")
        intake = validate_and_archive(
            files, folder=TRAINING, schema=schema, execution_id=execution_id,
            require_target=True, reporter=run.reporter,
            progress=lambda f: run.progress("validating", f), purpose="training")
        run.progress("loading")
        frame = pd.concat([batch.frame for batch in intake.good], ignore_index=True)
        run.log(f"Loaded {len(frame)} rows and {frame.shape[1]} columns from "
                f"{len(intake.good)} files.", stage="loading")
        fingerprint = {"files": [{"name": b.name, "sha256": b.sha256, "rows": len(b.frame)}
                                 for b in intake.good],
                       "rows": len(frame), "columns": int(frame.shape[1]),
                       **data_summary(frame, schema)}
    return LoadedData(frame=frame, fingerprint=fingerprint, reports=intake.reports)


def add_feedback(loaded: LoadedData, rows: list[dict], *, schema: BatchSchema,
                 run: StageRun) -> LoadedData:
    """The training files' rows followed by the labeled prediction records ``rows``."""
    from project_library.feedback import labeled_frame

    extra = labeled_frame(rows, schema, list(loaded.frame.columns))
    frame = pd.concat([loaded.frame, extra], ignore_index=True)
    run.log(f"Added {len(extra)} labeled prediction records (feedback) to the "
            f"{len(loaded.frame)} rows of the training files.", stage="loading")
    fingerprint = {**loaded.fingerprint, "rows": len(frame), "feedback_rows": len(extra)}
    return dataclasses.replace(loaded, frame=frame, fingerprint=fingerprint)


def preprocess(frame: pd.DataFrame, *, schema: BatchSchema, problem_type: str,
               run: StageRun) -> PreparedData:
    """Drop the rows without a target, hold out the test rows and plan the features.

    Raises:
        TrainingFailed: too few rows, a single class, a target that cannot be predicted, or no
            usable feature.
    """
    with run.timed("preprocess", "preprocessing"):
        run.progress("preprocessing")
        target = schema.target
        target_spec = schema.column(target)
        missing_target = frame[target].isna()
        if missing_target.any():
            run.log(f"Dropped {int(missing_target.sum())} rows without a value in the target "
                    f"'{target}'.", stage="preprocessing", level="WARNING")
            frame = frame[~missing_target].reset_index(drop=True)
        if len(frame) < MIN_ROWS:
            raise TrainingFailed(f"Only {len(frame)} rows have a target value; at least "
                                 f"{MIN_ROWS} are needed to train and test a model.")
        y = _target_array(frame[target], problem_type, target, target_spec.type)
        X = frame.drop(columns=[target])  # noqa: N806 - scikit-learn's naming
        classes: list = []
        if problem_type == "classification":
            classes, counts = np.unique(y, return_counts=True)
            if len(classes) < 2:
                raise TrainingFailed(f"Every row has the same target value "
                                     f"'{evaluation.json_label(classes[0])}'; a classifier needs "
                                     "at least two different classes to learn from.")
            summary = ", ".join(f"{evaluation.json_label(c)}: {n}"
                                for c, n in list(zip(classes, counts, strict=True))[:10])
            more = f" and {len(classes) - 10} more" if len(classes) > 10 else ""
            run.log(f"{len(classes)} classes ({summary}{more}).", stage="preprocessing")
            if len(classes) > 50 and len(classes) > len(y) / 2:
                run.log(f"The target has {len(classes)} different values for {len(y)} rows; "
                        "is this really a classification problem?", stage="preprocessing",
                        level="WARNING")

        repeated = frame.duplicated(keep=False)
        keys = row_keys(frame) if repeated.any() else None
        ordered = time_order_column(frame, schema)
        train_index, test_index, split = holdout_split(
            y, problem_type, keys, order=ordered[1] if ordered else None)
        if ordered:
            split["column"] = ordered[0]
            run.log(f"The rows are in time order by '{ordered[0]}': the latest "
                    f"{len(test_index)} rows are held out and the cross-validation folds are "
                    "stretches of time, so that the estimates describe rows that come after "
                    "the training rows, as fresh rows do.", stage="preprocessing")
        X_train, X_test = X.iloc[train_index], X.iloc[test_index]  # noqa: N806
        if split.get("duplicates_moved"):
            run.log(f"{int(repeated.sum())} rows are repeated across the batch files; "
                    f"{split['duplicates_moved']} test rows equal to training rows were kept "
                    "for training, so that the held-out rows are new to the model.",
                    stage="preprocessing", level="WARNING")
        run.log(f"Held out {len(X_test)} rows for testing"
                f"{' (stratified by class)' if split['stratified'] else ''}, "
                f"{'the latest' if ordered else 'seeded so the same data gives the same split'}"
                f"; {len(X_train)} rows for model selection and fitting. The held-out rows "
                "take no part in choosing the model.", stage="preprocessing")
        plan = plan_features(X_train, schema)
        for column, why in plan.dropped.items():
            # the schema's own choice is news to no one; any other drop is
            run.log(f"Not using column '{column}': {why}.", stage="preprocessing",
                    level="INFO" if column in schema.ignored else "WARNING")
        for column, why in plan.retype.items():
            if column not in plan.dropped:
                run.log(f"Column '{column}': {why}.", stage="preprocessing", level="WARNING")
        if not plan.used:
            raise TrainingFailed("No column is usable as a feature: every column besides the "
                                 "target is ignored, constant or an identifier.")
        run.log(_plan_summary(plan), stage="preprocessing")
    return PreparedData(X_train=X_train, X_test=X_test, y_train=y[train_index],
                        y_test=y[test_index], classes=list(classes), plan=plan, split=split)


def cv_interval(values: np.ndarray, sign: float = 1.0) -> list | None:
    """The 95 % t interval of the mean of the fold scores ``values`` (times ``sign``), as
    ``[low, high]``; None with fewer than two folds scored. The folds share training rows, so
    this is an approximation (it tends to be narrow), shown with the held-out interval."""
    scored = np.asarray(values, dtype=float)
    scored = scored[~np.isnan(scored)] * sign
    if len(scored) < 2:
        return None
    mean = float(np.mean(scored))
    half = float(stats.t.ppf(0.5 + INTERVAL_LEVEL / 2, len(scored) - 1)
                 * np.std(scored, ddof=1) / math.sqrt(len(scored)))
    return [evaluation.json_number(mean - half), evaluation.json_number(mean + half)]


def _ranked(leaderboard: list[dict], metric: str) -> list[dict]:
    # Stable: on a tie the row added first stays first.
    return sorted(leaderboard, key=lambda row: row["cv_mean"],
                  reverse=metric not in LOWER_IS_BETTER)


def search(data: PreparedData, *, problem_type: str, metric: str, run: StageRun,
           time_budget_seconds: float | None = None,
           candidates: Sequence[str] | None = None) -> SearchResult:
    """Cross-validate each candidate algorithm on the training part, within the time budget
    (counted from ``run.started``; at least one candidate is always tried).

    Raises:
        TrainingFailed: no candidate suits, or every candidate failed.
    """
    with run.timed("search", "training"):
        run.progress("training")
        multiclass = problem_type == "classification" and len(data.classes) > 2
        scoring = SCORERS[metric][1 if multiclass else 0]
        X_train, y_train = data.X_train, data.y_train  # noqa: N806
        splitter = _cv_splitter(problem_type, y_train,
                                time_ordered=data.split["method"] == "time-ordered")
        folds = list(splitter.split(np.zeros(len(y_train)), y_train))
        scorer = get_scorer(scoring)
        options = candidate_models(problem_type, len(X_train))
        if candidates is not None:
            options = [c for c in options if c.name in set(candidates)]
            if not options:
                raise TrainingFailed("None of the requested algorithms suits this problem.")
        budget = time_budget_seconds
        run.log(f"Comparing {len(options)} algorithms by {splitter.get_n_splits()}-fold "
                f"cross-validation on {metric}"
                f"{f' within {budget} s' if budget else ''}.", stage="training")
        leaderboard: list[dict] = []
        pipelines: dict[str, object] = {}
        outputs: dict[str, FoldOutput] = {}
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        for index, candidate in enumerate(options):
            elapsed = time.monotonic() - run.started
            if budget and leaderboard and elapsed > budget:
                skipped = ", ".join(c.name for c in options[index:])
                run.log(f"Time budget of {budget} s used up after {elapsed:.0f} s; not trying "
                        f"{skipped}.", stage="training", level="WARNING")
                break
            preprocessor = build_preprocessor(data.plan, scale=candidate.needs_scaling)
            pipeline = Pipeline([("preprocess", preprocessor),
                                 ("model", clone(candidate.estimator))])
            run.doing(f"fitting {candidate.name}")
            began = time.monotonic()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                values, fold_seconds, failures, output = _cross_validate(
                    pipeline, X_train, y_train, folds, scorer)
            took = time.monotonic() - began
            if np.isnan(values).all():
                why = f": {failures[0]}" if failures else ""
                run.log(f"{candidate.name} failed on every fold{why}", stage="training",
                        level="WARNING")
                run.progress("training", (index + 1) / len(options))
                continue
            if failures:
                run.log(f"{candidate.name} failed on {len(failures)} of {len(folds)} folds: "
                        f"{failures[0]}", stage="training", level="WARNING")
            mean = float(np.nanmean(values)) * sign
            std = float(np.nanstd(values))
            fit_seconds = float(np.mean(fold_seconds))
            leaderboard.append({"algorithm": candidate.name,
                                "cv_mean": evaluation.json_number(mean),
                                "cv_std": evaluation.json_number(std),
                                "cv_interval": cv_interval(values, sign),
                                "fit_seconds": round(fit_seconds, 3),
                                "params": json_params(candidate.estimator)})
            pipelines[candidate.name] = pipeline
            if not failures:
                outputs[candidate.name] = output
            run.log(f"{candidate.name}: {metric} {mean:.4f} ± {std:.4f} "
                    f"(fit {fit_seconds:.2f} s per fold, {took:.1f} s in all)"
                    f"{_warning_summary(caught)}", stage="training")
            run.progress("training", (index + 1) / len(options))
        if not leaderboard:
            raise TrainingFailed("Every algorithm failed on this data; see the log for why.")
    return SearchResult(leaderboard=_ranked(leaderboard, metric), pipelines=pipelines,
                        outputs=outputs, splitter=splitter, folds=folds, scorer=scorer)


def ensemble(found: SearchResult, data: PreparedData, *, problem_type: str, metric: str,
             run: StageRun) -> SearchResult:
    """Add the soft-voting ensembles of the best 2 and 3 candidates to the leaderboard, scored
    from the candidates' fold predictions (nothing is fitted again), and rank it again.

    Returns ``found`` with the ensembles' rows and (unfitted) models added.
    """
    with run.timed("ensemble", "training"):
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        singles = [row for row in found.leaderboard if row["algorithm"] in found.outputs]
        for size in ENSEMBLE_SIZES:
            if len(singles) < size:
                break
            names = [row["algorithm"] for row in singles[:size]]
            values = _ensemble_scores(names, found.outputs, data.y_train, found.folds,
                                      found.scorer)
            if values is None or np.isnan(values).any():
                continue
            mean, std = float(np.mean(values)) * sign, float(np.std(values))
            name = ENSEMBLE_PREFIX + " + ".join(names)
            found.leaderboard.append({
                "algorithm": name, "cv_mean": evaluation.json_number(mean),
                "cv_std": evaluation.json_number(std), "cv_interval": cv_interval(values, sign),
                "fit_seconds": round(sum(row["fit_seconds"] for row in singles[:size]), 3),
                "params": {"voting": "soft" if problem_type == "classification" else "mean",
                           "members": names}})
            found.pipelines[name] = ensemble_model(problem_type,
                                                   {n: found.pipelines[n] for n in names})
            averaged = "probabilities" if problem_type == "classification" else "predictions"
            run.log(f"{name} (the mean of their {averaged}, scored on the same folds): "
                    f"{metric} {mean:.4f} ± {std:.4f}", stage="training")
        # On a tie the single model wins: it comes first (stable sort) and is simpler to serve.
        found.leaderboard = _ranked(found.leaderboard, metric)
    return found


def refit(found: SearchResult, data: PreparedData, *, metric: str,
          run: StageRun) -> RefittedModel:
    """Fit the leaderboard's best model on the whole training part.
    """
    with run.timed("refit", "training"):
        best = found.leaderboard[0]
        algorithm = best["algorithm"]
        model = found.pipelines[algorithm]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(data.X_train, data.y_train)
        run.log(f"Chose {algorithm} ({metric} {best['cv_mean']:.4f} ± {best['cv_std']:.4f}) "
                f"and fitted it on {len(data.X_train)} rows.", stage="training")
    return RefittedModel(algorithm=algorithm, model=model, best=best)


def evaluate(chosen: RefittedModel, found: SearchResult, data: PreparedData, *,
             problem_type: str, metric: str, run: StageRun,
             importance_seconds: float = MIN_IMPORTANCE_SECONDS) -> Evaluation:
    """Measure the chosen model on the held-out rows: metrics, plots and the permutation
    importance of the features (within ``importance_seconds``).
    """
    with run.timed("evaluate", "evaluating"):
        run.progress("evaluating")
        model, X_test, y_test = chosen.model, data.X_test, data.y_test  # noqa: N806
        plots: dict[str, bytes] = {}
        predicted, proba = evaluation.predictions(model, X_test)
        if problem_type == "classification":
            metrics = evaluation.classification_metrics(model.classes_, y_test, predicted, proba)
            plots["plots/confusion_matrix.png"] = evaluation.plot_confusion_matrix(
                metrics["confusion_matrix"], metrics["labels"])
            roc = evaluation.plot_roc_curve(model.classes_, y_test, proba)
            if roc:
                plots["plots/roc_curve.png"] = roc
            run.log(f"Held-out accuracy {_format(metrics['accuracy'])} (always guessing the "
                    f"most common class: {_format(metrics['baseline_accuracy'])}), F1 macro "
                    f"{_format(metrics['f1_macro'])}, ROC AUC {_format(metrics['roc_auc'])}.",
                    stage="evaluating")
        else:
            metrics = evaluation.regression_metrics(y_test, predicted, data.y_train)
            plots["plots/predicted_vs_actual.png"] = evaluation.plot_predicted_vs_actual(
                y_test, predicted)
            plots["plots/residuals.png"] = evaluation.plot_residuals(y_test, predicted)
            run.log(f"Held-out RMSE {_format(metrics['rmse'])} (always predicting the mean: "
                    f"{_format(metrics['baseline_rmse'])}), MAE {_format(metrics['mae'])}, "
                    f"R² {_format(metrics['r2'])}.", stage="evaluating")
        run.progress("evaluating", 0.4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = evaluation.feature_importance(
                model, X_test[data.plan.used], y_test, scoring=found.scorer,
                budget_seconds=max(MIN_IMPORTANCE_SECONDS, importance_seconds))
        metrics["feature_importance"] = importances
        importance_plot = evaluation.plot_feature_importance(importances, metric)
        if importance_plot:
            plots["plots/feature_importance.png"] = importance_plot
        if importances:
            top = ", ".join(item["feature"] for item in importances[:5])
            run.log(f"Most important columns: {top}.", stage="evaluating")
        best = chosen.best
        metrics.update({"selection_metric": metric, "cv_mean": best["cv_mean"],
                        "cv_std": best["cv_std"], "n_train": len(data.X_train),
                        "n_test": len(X_test), "split": data.split,
                        "cv": _cv_info(found.splitter)})
        metrics["estimates"] = _estimates(best, metric, y_test, predicted, proba,
                                          model.classes_ if problem_type == "classification"
                                          else None, run)
    return Evaluation(metrics=metrics, plots=plots)


def column_warnings(plan: FeaturePlan, schema: BatchSchema) -> list[dict]:
    """The warnings about columns the model does not use as they are: every column dropped for
    a reason other than the schema's ``ignored`` list, and every column that looks like a date
    but is typed otherwise (with the proposal to retype it), as ``[{"column", "warning"}]``."""
    found = [{"column": column, "warning": f"not used: {why}"}
             for column, why in plan.dropped.items() if column not in schema.ignored]
    found += [{"column": column, "warning": why} for column, why in plan.retype.items()
              if column not in plan.dropped]
    return found


def _estimates(best: dict, metric: str, y_test, predicted, proba, classes, run: StageRun) -> dict:
    """The two estimates of the chosen model's ``metric`` with their 95 % intervals: the
    cross-validated one (on the training part, used to choose) and the held-out one (rows that
    took no part in choosing or fitting; percentile bootstrap), logged side by side."""
    held_out = evaluation.bootstrap_interval(
        metric, y_test, predicted, proba, None if classes is None else list(classes))
    cv_range = best.get("cv_interval")
    estimates = {"metric": metric,
                 "cross_validated": {"mean": best["cv_mean"], "std": best["cv_std"],
                                     "low": cv_range[0] if cv_range else None,
                                     "high": cv_range[1] if cv_range else None,
                                     "level": INTERVAL_LEVEL,
                                     "method": "t interval over the folds"},
                 "held_out": None if held_out is None else {
                     **{k: held_out[k] for k in ("value", "low", "high", "level", "rows",
                                                 "resamples")},
                     "method": "percentile bootstrap of the held-out rows"}}
    if held_out is not None:
        run.log(f"Estimates of {metric}: cross-validated {_format(best['cv_mean'])}"
                + (f" (95 % interval {_format(cv_range[0])} to {_format(cv_range[1])})"
                   if cv_range else "")
                + f"; held out {_format(held_out['value'])} (95 % bootstrap interval "
                f"{_format(held_out['low'])} to {_format(held_out['high'])}, "
                f"{held_out['rows']} rows).", stage="evaluating")
        better = (lambda a, b: a < b) if metric in LOWER_IS_BETTER else (lambda a, b: a > b)
        if cv_range and None not in cv_range and better(held_out["low"], cv_range[1]) \
                and better(held_out["low"], best["cv_mean"]):
            run.log("The held-out score is well above the cross-validated one: the held-out "
                    "rows may be easier than fresh rows will be (repeated or neighbouring "
                    "rows); trust the lower estimate.", stage="evaluating", level="WARNING")
    return estimates


def save(files: ProjectFiles, *, version: int, execution_id: str, problem_type: str,
         schema: BatchSchema, chosen: RefittedModel, leaderboard: list[dict],
         scored: Evaluation, data: PreparedData, fingerprint: dict,
         run: StageRun) -> SavedVersion:
    """Write model version ``version``: the model, its card (``metrics.json``), the
    leaderboard, the reference profile for drift checks, the plots and the manifest.
    """
    with run.timed("save", "saving"):
        run.progress("saving")
        plan = data.plan
        params = model_params(chosen.model)
        features = {"numeric": plan.numeric, "boolean": plan.boolean, "one_hot": plan.one_hot,
                    "ordinal": plan.ordinal, "dates": plan.dates, "dropped": plan.dropped,
                    "warnings": column_warnings(plan, schema), "retype": plan.retype}
        versions = library_versions()
        card = {"version": int(version), "execution_id": execution_id,
                "algorithm": chosen.algorithm, "problem_type": problem_type,
                "target": schema.target, "metrics": scored.metrics, "params": params,
                "features": features, "schema": schema.to_dict(),
                "data_fingerprint": fingerprint, "library_versions": versions}
        reference = drift.reference_profile(data.X_train, plan)
        reference["prediction"] = drift.target_profile(data.y_train, problem_type)
        artifacts = save_model_version(
            files, version, model=chosen.model,
            documents={"metrics.json": card, "leaderboard.json": leaderboard,
                       REFERENCE_PROFILE_FILE: reference},
            binaries=scored.plots)
        run.log(f"Saved model version {version} ({len(artifacts)} files) in "
                f"{version_folder(version)}.", stage="saving")
        run.progress("saving", 1.0)
    return SavedVersion(artifacts=artifacts, params=params, features=features,
                        library_versions=versions)


def train_project(files: ProjectFiles, *, project: Project, execution_id: str, version: int,
                  reporter: Reporter, candidates: Sequence[str] | None = None,
                  challenge: Callable[[PreparedData, object], dict] | None = None,
                  feedback_rows: list[dict] | None = None) -> dict:
    """Train, evaluate and save model version ``version`` of ``project``, stage by stage:
    :func:`load_and_validate`, :func:`preprocess`, :func:`search`, :func:`ensemble`,
    :func:`refit`, :func:`evaluate`, :func:`save`. Each stage logs the seconds it took;
    ``metrics["stage_seconds"]`` keeps them (in ``metrics.json`` without ``save``, which is
    still running when that file is written).

    The saved model is the one fitted on the training part (80 %) only, not refitted on all
    rows: the held-out metrics then describe exactly the model that is saved and served.

    Args:
        files: the project's files.
        project: the project (schema, problem type, selection metric, time budget).
        execution_id: names the archive folder ``archive/<execution_id>/``.
        version: the model version number; files go to ``models/v<version>/``.
        reporter: receives log lines and progress.
        candidates: restrict the algorithms tried to these names (default: all that suit the
            problem type and the data size).
        challenge: called with the prepared data (its held-out rows) and the saved model
            once the version is saved; its answer is the result's ``comparison`` (the
            champion/challenger comparison of ``project_library.challenger``).
        feedback_rows: labeled prediction records (``{column: value}`` with the target set
            to the actual value) added to the training files' rows (the project's
            ``train_on_feedback``); counted in ``data_fingerprint["feedback_rows"]``.

    Returns:
        ``{"algorithm", "metrics", "leaderboard", "params", "schema", "data_fingerprint",
        "library_versions", "artifacts", "plots", "validation", "problem_type", "features",
        "split"}``, all JSON-serialisable. ``artifacts`` maps each file name in ``models/v<N>/``
        to its SHA-256 (``reference_profile.json``, the training data's per-feature profile for
        drift checks, among them). ``split`` (also ``metrics["split"]``) is the held-out rule
        of :func:`holdout_split`; ``metrics["cv"]`` describes the cross-validation folds.

    Raises:
        NoBatchFiles: ``training_batch_files/`` is empty.
        AllFilesInvalid: every file broke the schema.
        TrainingFailed: the data cannot make a model (too few rows, a single class, no usable
            feature, every candidate failed).
    """
    schema = project.schema
    problem_type = project.problem_type
    metric = project.selection_metric
    run = StageRun(reporter, progress=_Progress(reporter, STAGE_START))

    loaded = load_and_validate(files, schema=schema, execution_id=execution_id, run=run)
    if feedback_rows:
        loaded = add_feedback(loaded, feedback_rows, schema=schema, run=run)
    data = preprocess(loaded.frame, schema=schema, problem_type=problem_type, run=run)
    warned = column_warnings(data.plan, schema)
    add_to_validation_report(files, execution_id, "column_warnings", warned)
    found = search(data, problem_type=problem_type, metric=metric, run=run,
                   time_budget_seconds=project.time_budget_seconds, candidates=candidates)
    found = ensemble(found, data, problem_type=problem_type, metric=metric, run=run)
    chosen = refit(found, data, metric=metric, run=run)
    search_seconds = sum(run.seconds[name] for name in ("search", "ensemble", "refit"))
    scored = evaluate(chosen, found, data, problem_type=problem_type, metric=metric, run=run,
                      importance_seconds=IMPORTANCE_BUDGET_SHARE * search_seconds)
    metrics = scored.metrics
    metrics["column_warnings"] = warned
    metrics["stage_seconds"] = dict(run.seconds)
    saved = save(files, version=version, execution_id=execution_id, problem_type=problem_type,
                 schema=schema, chosen=chosen, leaderboard=found.leaderboard, scored=scored,
                 data=data, fingerprint=loaded.fingerprint, run=run)
    metrics["stage_seconds"] = dict(run.seconds)
    comparison = challenge(data, chosen.model) if challenge is not None else None
    return {"algorithm": chosen.algorithm, "metrics": metrics, "leaderboard": found.leaderboard,
            "params": saved.params, "schema": schema.to_dict(),
            "data_fingerprint": loaded.fingerprint, "library_versions": saved.library_versions,
            "artifacts": saved.artifacts, "plots": sorted(scored.plots),
            "validation": [r.to_dict() for r in loaded.reports], "column_warnings": warned,
            "problem_type": problem_type, "features": saved.features, "split": data.split,
            **({"comparison": comparison} if comparison is not None else {})}


def _plan_summary(plan: FeaturePlan) -> str:
    parts = []
    for label, columns in (("numeric", plan.numeric), ("yes/no", plan.boolean),
                           ("one-hot encoded", plan.one_hot), ("ordinal encoded", plan.ordinal),
                           ("date", plan.dates)):
        if columns:
            parts.append(f"{len(columns)} {label}")
    return f"Using {len(plan.used)} feature columns: {', '.join(parts)}."
