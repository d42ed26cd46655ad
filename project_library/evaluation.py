"""Measuring a fitted model on held-out rows: metrics, plots and permutation importance.

Plots are drawn on :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas
directly, never through ``pyplot``: no global figure state, nothing to leak between executions
running in the same process, and no display needed.
"""

from __future__ import annotations

import io
import math
import time

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    check_scoring,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.utils.metaestimators import available_if

TOP_FEATURES = 15
IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 5
MIN_IMPORTANCE_ROWS = 200
MAX_ROC_CLASSES = 10
MAX_MATRIX_LABELS = 30
#: bootstrap resamples of the held-out rows for the interval of the held-out score
BOOTSTRAP_RESAMPLES = 1000
#: ... fewer for ROC AUC, which sorts the scores on every resample
BOOTSTRAP_RESAMPLES_AUC = 200
#: the held-out metric of each selection metric (its name in ``metrics``)
HELD_OUT_NAME = {"f1": "f1_macro"}


def json_number(value) -> float | int | None:
    """A JSON-safe Python number (NaN and infinities become None)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return number if math.isfinite(number) else None


def json_label(value):
    """A class label as a JSON-safe value (numpy scalars become Python ones)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return value
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def predictions(model, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:  # noqa: N803
    """The model's predictions for ``X`` and, where it has ``predict_proba``, its class
    probabilities: made once, for the metrics and the plots alike."""
    proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
    return model.predict(X), proba


def classification_metrics(labels: list, y: np.ndarray, predicted: np.ndarray,
                           proba: np.ndarray | None) -> dict:
    """Accuracy, macro/weighted precision, recall and F1, ROC AUC and the confusion matrix,
    from the predictions for the held-out rows ``y`` (``labels``: the model's classes, the
    columns of ``proba``).

    ROC AUC is binary, or one-vs-rest macro for several classes; None when the model has no
    ``predict_proba`` or the held-out rows lack a class.
    """
    labels = list(labels)
    metrics: dict = {"accuracy": json_number(accuracy_score(y, predicted))}
    for average in ("macro", "weighted"):
        metrics[f"precision_{average}"] = json_number(
            precision_score(y, predicted, average=average, zero_division=0))
        metrics[f"recall_{average}"] = json_number(
            recall_score(y, predicted, average=average, zero_division=0))
        metrics[f"f1_{average}"] = json_number(
            f1_score(y, predicted, average=average, zero_division=0))
    metrics["roc_auc"] = None
    if proba is not None:
        try:
            if len(labels) == 2:
                metrics["roc_auc"] = json_number(roc_auc_score(y == labels[1], proba[:, 1]))
            else:
                metrics["roc_auc"] = json_number(
                    roc_auc_score(y, proba, multi_class="ovr", labels=labels))
        except ValueError:
            metrics["roc_auc"] = None  # a class is missing from the held-out rows
        try:
            metrics["log_loss"] = json_number(log_loss(y, proba, labels=labels))
        except ValueError:
            metrics["log_loss"] = None  # a held-out class the model never saw
    else:
        metrics["log_loss"] = None
    metrics["confusion_matrix"] = confusion_matrix(y, predicted, labels=labels).tolist()
    metrics["labels"] = [json_label(label) for label in labels]
    values, counts = np.unique(y, return_counts=True)
    majority = values[np.argmax(counts)]
    metrics["baseline_accuracy"] = json_number(np.mean(y == majority))
    return metrics


def regression_metrics(y: np.ndarray, predicted: np.ndarray, y_train: np.ndarray) -> dict:
    """MSE, RMSE, MAE and R² of the predictions for the held-out rows ``y``, plus the RMSE of
    always predicting the training mean."""
    mse = mean_squared_error(y, predicted)
    baseline = np.full(len(y), float(np.mean(y_train)))
    return {"mse": json_number(mse), "rmse": json_number(math.sqrt(mse)),
            "mae": json_number(mean_absolute_error(y, predicted)),
            "r2": json_number(r2_score(y, predicted)),
            "mape": json_number(mean_absolute_percentage_error(y, predicted)),
            "baseline_rmse": json_number(math.sqrt(mean_squared_error(y, baseline)))}


def score(metric: str, y: np.ndarray, predicted: np.ndarray, proba: np.ndarray | None,
          labels: list | None = None) -> float | None:
    """The selection metric ``metric`` (``METRICS`` of ``entity.project``) of the predictions
    for rows ``y``: what :func:`bootstrap_interval` resamples. None where it cannot be computed
    (ROC AUC or log loss without probabilities, a class missing)."""
    try:
        if metric == "accuracy":
            return float(np.mean(y == predicted))
        if metric == "balanced_accuracy":
            return float(balanced_accuracy_score(y, predicted))
        if metric == "f1":
            return float(f1_score(y, predicted, average="macro", zero_division=0))
        if metric in ("roc_auc", "log_loss"):
            if proba is None:
                return None
            if metric == "log_loss":
                return float(log_loss(y, proba, labels=list(labels)))
            if len(labels) == 2:
                return float(roc_auc_score(y == labels[1], proba[:, 1]))
            return float(roc_auc_score(y, proba, multi_class="ovr", labels=list(labels)))
        error = np.asarray(predicted, dtype=float) - np.asarray(y, dtype=float)
        if metric == "rmse":
            return float(np.sqrt(np.mean(error ** 2)))
        if metric == "mae":
            return float(np.mean(np.abs(error)))
        if metric == "mape":
            return float(mean_absolute_percentage_error(y, predicted))
        if metric == "r2":
            return float(r2_score(y, predicted))
    except ValueError:
        return None
    raise ValueError(f"unknown metric {metric!r}")


def _codes(y: np.ndarray, predicted: np.ndarray, labels: list) -> tuple[np.ndarray, np.ndarray]:
    position = {label: index for index, label in enumerate(labels)}
    extra = len(labels)  # a predicted or true value outside the labels: its own code
    return (np.array([position.get(v, extra) for v in y.tolist()]),
            np.array([position.get(v, extra) for v in predicted.tolist()]))


def _auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC from ranks (ties averaged), as ``roc_auc_score``; NaN for one class."""
    count = int(positive.sum())
    if count == 0 or count == len(positive):
        return math.nan
    ranks = stats.rankdata(scores)
    return float((ranks[positive].sum() - count * (count + 1) / 2)
                 / (count * (len(positive) - count)))


class _Resampled:
    """The selection metric of resampled held-out rows, in numpy: the same numbers as
    :func:`score` (tested), at a fraction of scikit-learn's per-call cost."""

    def __init__(self, metric: str, y, predicted, proba, labels):
        self.metric, self.proba = metric, proba
        if labels is not None:
            self.k = len(labels) + 1
            self.y, self.p = _codes(np.asarray(y), np.asarray(predicted), list(labels))
        else:
            self.y = np.asarray(y, dtype=float)
            self.p = np.asarray(predicted, dtype=float)

    def __call__(self, rows: np.ndarray) -> float:
        y, p, metric = self.y[rows], self.p[rows], self.metric
        if metric == "accuracy":
            return float(np.mean(y == p))
        if metric in ("f1", "balanced_accuracy"):
            k = self.k
            matrix = np.bincount(y * k + p, minlength=k * k).reshape(k, k)
            true_counts, hits = matrix.sum(axis=1), np.diag(matrix)
            present = true_counts[:-1] > 0
            recall = hits[:-1][present] / true_counts[:-1][present]
            if metric == "balanced_accuracy":
                return float(np.mean(recall))
            predicted_counts = matrix.sum(axis=0)[:-1]
            # macro F1 over the labels present in y or in the predictions (zero_division=0)
            shown = (true_counts[:-1] > 0) | (predicted_counts > 0)
            denominator = true_counts[:-1] + predicted_counts
            f1 = np.where(denominator > 0, 2 * hits[:-1] / np.maximum(denominator, 1), 0.0)
            return float(np.mean(f1[shown]))
        if metric == "log_loss":
            chosen = self.proba[rows, np.minimum(y, self.proba.shape[1] - 1)]
            eps = np.finfo(self.proba.dtype).eps
            return float(-np.mean(np.log(np.clip(chosen, eps, 1))))
        if metric == "roc_auc":
            proba = self.proba[rows]
            if proba.shape[1] == 2:
                return _auc(y == 1, proba[:, 1])
            return float(np.mean([_auc(y == c, proba[:, c]) for c in range(proba.shape[1])]))
        error = p - y
        if metric == "rmse":
            return float(np.sqrt(np.mean(error ** 2)))
        if metric == "mae":
            return float(np.mean(np.abs(error)))
        if metric == "mape":
            eps = np.finfo(np.float64).eps
            return float(np.mean(np.abs(error) / np.maximum(np.abs(y), eps)))
        total = float(np.sum((y - y.mean()) ** 2))
        return math.nan if total == 0 else 1 - float(np.sum(error ** 2)) / total


def bootstrap_interval(metric: str, y: np.ndarray, predicted: np.ndarray,
                       proba: np.ndarray | None, labels: list | None = None, *,
                       level: float = 0.95, seed: int = 0) -> dict | None:
    """The percentile bootstrap interval of the held-out ``metric``: the held-out rows resampled
    with replacement 1,000 times (200 for ROC AUC), seeded, the metric computed on each.
    ``labels``: the model's classes (the columns of ``proba``), None for a regression.

    Returns ``{"metric", "value", "low", "high", "level", "resamples", "rows"}`` (JSON-safe) or
    None when the metric cannot be computed on these rows.
    """
    value = score(metric, y, predicted, proba, labels)
    if value is None or len(y) < 2:
        return None
    resamples = BOOTSTRAP_RESAMPLES_AUC if metric == "roc_auc" else BOOTSTRAP_RESAMPLES
    resampled = _Resampled(metric, y, predicted, proba, labels)
    rng = np.random.default_rng(seed)
    values = np.array([resampled(rng.integers(0, len(y), len(y))) for _ in range(resamples)])
    values = values[np.isfinite(values)]
    if len(values) < resamples / 2:
        return None
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {"metric": metric, "value": json_number(value), "low": json_number(low),
            "high": json_number(high), "level": level, "resamples": resamples,
            "rows": int(len(y))}


def feature_importance(model, X: pd.DataFrame, y: np.ndarray, *, scoring,  # noqa: N803
                       budget_seconds: float | None = None) -> list[dict]:
    """Permutation importance of each input column on a bounded sample of held-out rows.

    At most 2,000 rows and 5 repeats. With ``budget_seconds``, the work is sized to fit it: one
    scoring of the sample is timed, then the repeats (down to 1) and then the rows (down to 200)
    are reduced until ``columns x repeats`` scorings fit the budget, so that this extra never
    costs much next to the model search itself.

    Args:
        model: the fitted pipeline.
        X: held-out rows, one column per input feature.
        y: their targets.
        scoring: a scikit-learn scorer name or callable.
        budget_seconds: the time the importance may take (None: no limit).

    Returns:
        The top 15 as ``[{"feature", "importance", "std"}]``, most important first.
    """
    rng = np.random.default_rng(0)
    if len(X) > IMPORTANCE_ROWS:
        chosen = rng.choice(len(X), IMPORTANCE_ROWS, replace=False)
        X, y = X.iloc[chosen], y[chosen]  # noqa: N806
    repeats = IMPORTANCE_REPEATS
    if budget_seconds is not None and X.shape[1]:
        scorer = check_scoring(model, scoring=scoring)
        began = time.perf_counter()
        scorer(model, X, y)
        per_score = max(time.perf_counter() - began, 1e-6)
        affordable = budget_seconds / per_score  # scorings that fit the budget
        repeats = int(min(IMPORTANCE_REPEATS, max(1, affordable // X.shape[1])))
        share = affordable / (X.shape[1] * repeats)
        if share < 1 and len(X) > MIN_IMPORTANCE_ROWS:
            rows = max(MIN_IMPORTANCE_ROWS, int(len(X) * share))
            chosen = np.sort(rng.choice(len(X), rows, replace=False))
            X, y = X.iloc[chosen], y[chosen]  # noqa: N806
    drops = permutation_drops(model, X, y, check_scoring(model, scoring=scoring), repeats)
    means, stds = drops.mean(axis=1), drops.std(axis=1)
    order = np.argsort(means)[::-1][:TOP_FEATURES]
    return [{"feature": str(X.columns[i]), "importance": json_number(means[i]),
             "std": json_number(stds[i])} for i in order]


def _model_has(method: str):
    return lambda replay: hasattr(replay.model, method)


class _Replay(BaseEstimator):
    """Answers a scorer with slices of predictions made once, for many blocks of rows at
    a time: a model's answer for a row does not depend on the other rows of the call."""

    def __init__(self, model, rows: pd.DataFrame):
        self.model, self.rows = model, rows
        self.block = slice(0, 0)
        self._answers: dict[str, np.ndarray] = {}
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def _answer(self, method: str) -> np.ndarray:
        if method not in self._answers:
            self._answers[method] = np.asarray(getattr(self.model, method)(self.rows))
        return self._answers[method][self.block]

    # Only the methods the model has: a scorer takes the first one available (ROC AUC prefers
    # decision_function) and must take what it would take on the model itself.
    @available_if(_model_has("predict"))
    def predict(self, X):  # noqa: N803 - X is the current block, answered from the replay
        return self._answer("predict")

    @available_if(_model_has("predict_proba"))
    def predict_proba(self, X):  # noqa: N803
        return self._answer("predict_proba")

    @available_if(_model_has("decision_function"))
    def decision_function(self, X):  # noqa: N803
        return self._answer("decision_function")


class _ReplayClassifier(ClassifierMixin, _Replay):
    pass


class _ReplayRegressor(RegressorMixin, _Replay):
    pass


def permutation_drops(model, X: pd.DataFrame, y: np.ndarray, scorer,  # noqa: N803
                      repeats: int, *, seed: int = 0, max_rows: int = 100_000) -> np.ndarray:
    """Permutation importance: how much ``scorer`` drops when one column is shuffled, for each
    column (rows) and repeat (columns of the result).

    The same measure as ``sklearn.inspection.permutation_importance``, but all the shuffled
    copies are predicted together (up to ``max_rows`` rows per call) instead of one call per
    column and repeat: on small held-out sets a prediction's fixed cost (a forest's hundreds
    of trees, an ensemble's members) is most of its time, so this is many times cheaper.
    """
    rng = np.random.default_rng(seed)
    baseline = scorer(model, X, y)
    kind = _ReplayClassifier if hasattr(model, "classes_") else _ReplayRegressor
    rows = len(X)
    tasks = [(column, repeat) for repeat in range(repeats) for column in range(X.shape[1])]
    per_call = max(1, max_rows // max(rows, 1))
    drops = np.zeros((X.shape[1], repeats))
    for start in range(0, len(tasks), per_call):
        chunk = tasks[start:start + per_call]
        blocks = []
        for column, _ in chunk:
            block = X.copy()
            block.isetitem(column, X.iloc[:, column].to_numpy()[rng.permutation(rows)])
            blocks.append(block)
        replay = kind(model, pd.concat(blocks, ignore_index=True))
        for index, (column, repeat) in enumerate(chunk):
            replay.block = slice(index * rows, (index + 1) * rows)
            drops[column, repeat] = baseline - scorer(replay, blocks[index], y)
    return drops


#: inches per character of a 10-point tick label (DejaVu Sans averages ~0.6 em; rounded up)
_CHAR_INCHES = 0.08
#: beyond this many characters a label's width is measured (a constrained layout, one more draw)
_MEASURED_LABELS = 28


def _figure(width: float = 6.4, height: float = 4.8, *, left_labels: list[str] = (),
            bottom_labels: list[str] = (), rotated: bool = False) -> Figure:
    """A figure on its own Agg canvas with margins wide enough for its tick labels.

    The margins are computed from the labels' lengths: a constrained layout would measure them
    but costs a second draw (about half a plot's time); it is kept only for labels too long to
    estimate safely.
    """
    labels = [*left_labels, *bottom_labels]
    if any(len(label) > _MEASURED_LABELS for label in labels):
        figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    else:
        figure = Figure(figsize=(width, height), dpi=100)
        left = 0.75 + _CHAR_INCHES * max((len(label) for label in left_labels), default=3)
        bottom = 0.6 + (0.71 * _CHAR_INCHES * max((len(label) for label in bottom_labels),
                                                   default=0) if rotated else 0.1)
        figure.subplots_adjust(left=min(0.6, left / width), right=1 - 0.25 / width,
                               bottom=min(0.5, bottom / height), top=1 - 0.45 / height)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    figure.clear()
    return buffer.getvalue()


def plot_confusion_matrix(matrix: list[list[int]], labels: list) -> bytes:
    """A confusion-matrix heat map with the counts written in the cells."""
    size = min(len(labels), MAX_MATRIX_LABELS)
    values = np.asarray(matrix)[:size, :size]
    names = [str(label) for label in labels[:size]]
    rotated = size > 4
    figure = _figure(max(4.8, 0.45 * size + 2), max(4.0, 0.45 * size + 1.5),
                     left_labels=names, bottom_labels=names, rotated=rotated)
    axes = figure.subplots()
    axes.imshow(values, cmap="Blues")  # the counts are written in the cells: no colour bar
    axes.set_xticks(range(size), names, rotation=45 if rotated else 0,
                    ha="right" if rotated else "center")
    axes.set_yticks(range(size), names)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("Actual")
    axes.set_title("Confusion matrix (held-out rows)")
    if size <= 15:
        threshold = values.max() / 2 if values.size else 0
        for i in range(size):
            for j in range(size):
                axes.text(j, i, str(values[i, j]), ha="center", va="center",
                          color="white" if values[i, j] > threshold else "black")
    return _png(figure)


def plot_roc_curve(labels: list, y: np.ndarray, proba: np.ndarray | None) -> bytes | None:
    """ROC curve(s) from the class probabilities ``proba`` (columns: ``labels``): one for a
    binary problem, one-vs-rest per class otherwise (up to 10)."""
    if proba is None:
        return None
    labels = list(labels)
    figure = _figure()
    axes = figure.subplots()
    drawn = 0
    shown = [labels[1]] if len(labels) == 2 else labels[:MAX_ROC_CLASSES]
    for label in shown:
        positive = y == label
        if positive.all() or not positive.any():
            continue
        column = labels.index(label)
        fpr, tpr, _ = roc_curve(positive, proba[:, column])
        auc = roc_auc_score(positive, proba[:, column])
        name = f"AUC {auc:.3f}" if len(labels) == 2 else f"{label} (AUC {auc:.3f})"
        axes.plot(fpr, tpr, label=name)
        drawn += 1
    if not drawn:
        return None
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    axes.set_xlabel("False positive rate")
    axes.set_ylabel("True positive rate")
    axes.set_title("ROC curve (held-out rows)" if len(labels) == 2
                   else "ROC curves, one class vs the rest (held-out rows)")
    axes.legend(loc="lower right", fontsize="small")
    return _png(figure)


def plot_predicted_vs_actual(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    """Scatter of predictions against true values with the diagonal of perfect predictions."""
    figure = _figure()
    axes = figure.subplots()
    axes.scatter(actual, predicted, s=12, alpha=0.6)
    low = float(min(np.min(actual), np.min(predicted)))
    high = float(max(np.max(actual), np.max(predicted)))
    axes.plot([low, high], [low, high], linestyle="--", color="grey")
    axes.set_xlabel("Actual")
    axes.set_ylabel("Predicted")
    axes.set_title("Predicted vs actual (held-out rows)")
    return _png(figure)


def plot_residuals(actual: np.ndarray, predicted: np.ndarray) -> bytes:
    """Residuals (actual - predicted) against the predictions."""
    figure = _figure()
    axes = figure.subplots()
    axes.scatter(predicted, actual - predicted, s=12, alpha=0.6)
    axes.axhline(0, linestyle="--", color="grey")
    axes.set_xlabel("Predicted")
    axes.set_ylabel("Residual (actual - predicted)")
    axes.set_title("Residuals (held-out rows)")
    return _png(figure)


def plot_feature_importance(importances: list[dict], metric: str) -> bytes | None:
    """Horizontal bars of the permutation importances, most important on top."""
    if not importances:
        return None
    figure = _figure(6.4, max(3.0, 0.35 * len(importances) + 1.2),
                     left_labels=[item["feature"] for item in importances])
    axes = figure.subplots()
    ordered = importances[::-1]
    axes.barh([item["feature"] for item in ordered],
              [item["importance"] or 0.0 for item in ordered],
              xerr=[item["std"] or 0.0 for item in ordered], color="tab:blue")
    axes.set_xlabel(f"Drop in {metric} when the column is shuffled")
    figure.suptitle("Permutation feature importance (held-out rows)")  # wider than the bars
    return _png(figure)


def _label_text(value) -> str:
    """A class label as compared when scoring: true/false for booleans, whole numbers without
    a decimal point, anything else as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    return text.lower() if text.lower() in ("true", "false") else text


def scored_metrics(problem_type: str, truth: list, predicted: list,
                   probabilities: list[dict] | None = None) -> dict:
    """The standard metrics of ``predicted`` against labeled ``truth`` (a consumer's ``score``
    call): the same functions as the held-out evaluation, without what needs the training
    data (baselines). ``probabilities``: per row, class label -> probability.

    Raises:
        ValueError: a regression label that is not a number.
    """
    if problem_type == "regression":
        y = np.array([float(v) for v in truth], dtype="float64")
        p = np.array([float(v) for v in predicted], dtype="float64")
        if not (np.isfinite(y).all()):
            raise ValueError("labels must be finite numbers")
        metrics = regression_metrics(y, p, y)
        metrics.pop("baseline_rmse", None)
        return metrics
    y = np.array([_label_text(v) for v in truth], dtype=object)
    p = np.array([_label_text(v) for v in predicted], dtype=object)
    model_labels = [_label_text(k) for k in probabilities[0]] if probabilities else []
    extra = sorted(set(y) - set(model_labels) | set(p) - set(model_labels))
    labels = model_labels + extra
    proba = None
    if probabilities and not extra:
        proba = np.array([[row[k] for k in probabilities[0]] for row in probabilities])
    metrics = classification_metrics(labels, y, p, proba)
    metrics["f1"] = metrics["f1_macro"]
    metrics.pop("baseline_accuracy", None)
    return metrics
