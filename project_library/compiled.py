"""Small predictions without scikit-learn's per-call overhead, proved identical before use.

A one-row prediction through a fitted Pipeline spends most of its time in scikit-learn's
checks, tags, metadata routing and output wrappers, and, for histogram gradient boosting, in
one Python call plus one OpenMP region per tree. For the two shapes that real-time serving
meets most (the all-numeric feature pipeline of
:func:`~project_library.preprocessing.build_preprocessor`, and histogram gradient boosting on
numeric features) this module reads the fitted parameters and computes the same numbers with a
few array operations. Each compiled form is accepted only after it reproduced the original,
bit for bit, on probe rows with missing values and values on the split thresholds; anything it
does not recognise (or any mismatch) keeps scikit-learn's own path.

Both histogram gradient boosting shortcuts (:func:`boosting_outputs` and :class:`CompiledTrees`)
rest on scikit-learn's private ``_raw_predict``, ``_loss`` and ``_predictors``: they go through
the adapter :data:`RAW_PREDICT`, which checks once per process, on small fitted models, that the
private path still gives what ``predict`` and ``predict_proba`` give. If it does not, serving
uses ``predict`` and ``predict_proba`` (and no compiled trees), and one log line says so.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from logging_layer.adapters import Adapter
from project_library.preprocessing import SelectColumns, to_float


def boosting_outputs(estimator, features, want_proba: bool, trees: CompiledTrees | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None]:
    """``predict(features)`` and, if wanted, ``predict_proba(features)`` of a histogram
    gradient boosting ``estimator`` from one raw prediction (scikit-learn computes it once per
    method), following scikit-learn 1.9's own ``predict`` and ``predict_proba``. ``trees``, its
    compiled form, computes the raw prediction of a few rows given as an array. Private
    internals: only where :data:`RAW_PREDICT` is usable."""
    if trees is not None and isinstance(features, np.ndarray) and len(features) <= trees.MAX_ROWS:
        raw = trees.raw_predict(features)
    else:
        raw = estimator._raw_predict(features)
    if isinstance(estimator, HistGradientBoostingRegressor):
        return estimator._loss.link.inverse(raw.ravel()), None
    proba = estimator._loss.predict_proba(raw) if want_proba else None
    if raw.shape[1] == 1:
        encoded = (raw.ravel() > 0).astype(int)
    else:
        encoded = np.argmax(raw, axis=1)
    return estimator.classes_[encoded], proba


def _probe_raw_predict() -> str | None:
    """Fit tiny boosting models (two classes, three, a regression; with missing values) and
    compare the private path, plain and through compiled trees, with the public one: the
    same arrays or the reason they differ."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(90, 3))
    features[::7, 1] = np.nan
    signal = features[:, 0] + np.nan_to_num(features[:, 1])
    cases = ((HistGradientBoostingClassifier, (signal > 0).astype(int)),
             (HistGradientBoostingClassifier, np.digitize(signal, [-0.5, 0.5])),
             (HistGradientBoostingRegressor, signal))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cls, target in cases:
            estimator = cls(max_iter=4, max_leaf_nodes=4, min_samples_leaf=5,
                            early_stopping=False).fit(features, target)
            classifier = cls is HistGradientBoostingClassifier
            public = (estimator.predict(features),
                      estimator.predict_proba(features) if classifier else None)
            trees = CompiledTrees.compile(estimator)
            if trees is None:
                return f"compiled trees refused a fitted {cls.__name__}"
            for rows in (features, features[:1]):
                for with_trees in (None, trees):
                    predicted, proba = boosting_outputs(estimator, rows, classifier, with_trees)
                    if not np.array_equal(predicted, public[0][:len(rows)]) or (
                            classifier and not np.array_equal(proba, public[1][:len(rows)])):
                        return f"{cls.__name__}: the raw path's answers differ from predict"
    return None


#: scikit-learn's private raw predictions, checked against ``predict`` and ``predict_proba``
RAW_PREDICT = Adapter(
    "sklearn-raw-predict", _probe_raw_predict,
    internal="scikit-learn's HistGradientBoosting _raw_predict, _loss and _predictors",
    fallback="predict and predict_proba")


class NumericFeatures:
    """The all-numeric feature pipeline of :func:`~project_library.preprocessing.build_preprocessor`
    (select the columns, cast to float, impute, optionally standardise) as four array operations.

    scikit-learn spends most of a small prediction checking, tagging and routing around these
    steps, not computing them. :meth:`compile` accepts only that exact pipeline, reads the fitted
    statistics, and proves on probe rows (with missing values) that its output is identical,
    bit for bit, to the pipeline's own ``transform``; anything else stays on scikit-learn's path.
    """

    def __init__(self, columns: list[str], fill: np.ndarray, mean: np.ndarray | None,
                 scale: np.ndarray | None):
        self.columns = list(columns)
        self.fill, self.mean, self.scale = fill, mean, scale
        self._positions: dict[int, tuple[pd.Index, np.ndarray]] = {}

    @classmethod
    def compile(cls, transformers: list) -> NumericFeatures | None:
        """The fast equivalent of ``transformers`` (a list holding one such Pipeline), or None."""
        if len(transformers) != 1 or not isinstance(transformers[0], Pipeline):
            return None
        pipeline = transformers[0]
        steps = [step for _, step in pipeline.steps]
        if len(steps) not in (3, 4):
            return None
        select, cast, impute, *rest = steps
        if not (type(select) is SelectColumns and select.columns
                and type(cast) is FunctionTransformer and cast.func is to_float
                and not cast.kw_args and not cast.validate
                and type(impute) is SimpleImputer and not impute.add_indicator
                and isinstance(impute.missing_values, float) and math.isnan(impute.missing_values)):
            return None
        fill = np.asarray(getattr(impute, "statistics_", []), dtype="float64")
        if fill.shape != (len(select.columns),) or not np.isfinite(fill).all():
            return None
        mean = scale = None
        if rest:
            scaler = rest[0]
            if type(scaler) is not StandardScaler or not hasattr(scaler, "n_samples_seen_"):
                return None
            mean = scaler.mean_ if scaler.with_mean else None
            scale = scaler.scale_ if scaler.with_std else None
        compiled = cls(select.columns, fill, mean, scale)
        return compiled if compiled._matches(pipeline) else None

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The features of ``frame``: ``pipeline.transform(frame)``, the same float64 array."""
        columns = frame.columns
        known = self._positions.get(id(columns))
        if known is not None and known[0] is columns:  # the same (shared) column index
            positions = known[1]
        else:
            positions = columns.get_indexer(self.columns)
            if (positions < 0).any():  # the pipeline's own error for a missing column
                frame[self.columns]
            if len(self._positions) >= 64:  # frames built with their own column index
                self._positions.clear()
            # Keyed by identity (the entry keeps the index alive, so its id is not reused):
            # real-time frames share one column index per list of names.
            self._positions[id(columns)] = (columns, positions)
        values = frame.to_numpy()
        if values.dtype == np.float64:  # float (and plain integer) columns: one block
            features = values[:, positions]
        else:  # nullable integers or booleans: to_float, column by column
            features = to_float(frame.iloc[:, positions])
            if not features.flags.writeable:  # pandas may hand out its own (read-only) block
                features = features.copy()
        missing = np.isnan(features)
        if missing.any():
            features[missing] = np.broadcast_to(self.fill, features.shape)[missing]
        if self.mean is not None:
            features -= self.mean
        if self.scale is not None:
            features /= self.scale
        return features

    def _matches(self, pipeline: Pipeline) -> bool:
        """Identical output to ``pipeline.transform`` on probe rows around the fitted
        statistics, a fifth of the values missing, and on a nullable-integer frame."""
        rng = np.random.default_rng(0)
        centre = self.fill
        spread = np.abs(centre) + 1.0
        probe = centre + spread * rng.normal(size=(40, len(centre)))
        probe[rng.random(probe.shape) < 0.2] = np.nan
        probe[:, 0] = np.where(np.arange(40) % 3 == 0, np.nan, probe[:, 0])
        frames = [pd.DataFrame(probe, columns=self.columns),
                  pd.DataFrame({name: pd.array(np.round(probe[:, i]), dtype="Float64")
                                .astype("Int64") for i, name in enumerate(self.columns)})]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for frame in frames:
                    expected = np.asarray(pipeline.transform(frame))
                    if not np.array_equal(self.transform(frame), expected, equal_nan=True) \
                            or expected.dtype != np.float64:
                        return False
        except Exception:  # noqa: BLE001 - any doubt keeps scikit-learn's own path
            return False
        return True


class CompiledTrees:
    """The raw prediction of a fitted histogram gradient boosting model on numeric features.

    For one row, every split of every tree is decided at once (one gather and one comparison
    over all the nodes), which gives each node its next node; then all trees are walked
    together, one array lookup per level (a leaf points to itself). For more rows, the trees
    are walked together level by level, deciding only the splits on each row's paths. The sum
    follows scikit-learn's own order (the baseline, then each tree's leaf value, added one
    after the other), so the result is the same float, not just a close one. Worth it for
    small batches only (on 100 trees of depth 14: 45 us against about 1 ms for one row, 240
    us against 1 ms for 8 rows): the array walk costs time per row and level that
    scikit-learn's compiled loop does not, so :attr:`MAX_ROWS` bounds its use.
    """

    MAX_ROWS = 64

    def __init__(self, estimator):
        nodes = [predictor.nodes for iteration in estimator._predictors for predictor in iteration]
        self.tree_class = np.array([k for iteration in estimator._predictors
                                    for k in range(len(iteration))], dtype=np.intp)
        sizes = np.array([len(n) for n in nodes])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        table = np.concatenate(nodes)
        owner = np.repeat(offsets, sizes)
        own = np.arange(len(table), dtype=np.intp)
        leaf = table["is_leaf"].astype(bool)
        self.n_outputs = int(estimator.n_trees_per_iteration_)
        self.n_features = int(estimator.n_features_in_)
        self.roots = offsets
        self.feature = np.where(leaf, 0, table["feature_idx"]).astype(np.intp)
        self.threshold = table["num_threshold"].astype(np.float64)
        self.missing_left = table["missing_go_to_left"].astype(bool)
        # Where each split reads its value: the feature itself, or for a split that sends
        # missing values left, the same feature with NaN replaced by -inf (in the second half of
        # the row built by raw_predict). A NaN compares false with "<=" and so goes right.
        self.source = self.feature + np.where(self.missing_left & ~leaf, self.n_features, 0)
        self.left = np.where(leaf, own, owner + table["left"].astype(np.intp))
        self.right = np.where(leaf, own, owner + table["right"].astype(np.intp))
        self.value = table["value"].astype(np.float64)
        self.depth = int(table["depth"].max()) if len(table) else 0
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
        self._single_output = bool(self.n_outputs == 1)

    @classmethod
    def compile(cls, estimator) -> CompiledTrees | None:
        """The compiled form of a fitted HistGradientBoosting model without categorical
        features and fitted on arrays (no feature names), or None."""
        if type(estimator) not in (HistGradientBoostingClassifier,
                                   HistGradientBoostingRegressor):
            return None
        try:
            if getattr(estimator, "is_categorical_", None) is not None or \
                    hasattr(estimator, "feature_names_in_") or not estimator._predictors:
                return None
            if any(predictor.nodes["is_categorical"].any()
                   for iteration in estimator._predictors for predictor in iteration):
                return None
            compiled = cls(estimator)
            return compiled if compiled._matches(estimator) else None
        except (AttributeError, KeyError, TypeError, ValueError):  # another layout: no
            return None

    def raw_predict(self, features: np.ndarray) -> np.ndarray:
        """``estimator._raw_predict(features)``: shape ``(rows, n_outputs)``."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"X has {features.shape[-1]} features, but the model is expecting "
                             f"{self.n_features} features as input.")
        rows = features.shape[0]
        # scikit-learn: "if isnan(value): go left if missing_go_to_left; elif value <= threshold:
        # go left". NaN <= threshold is false (right), -inf <= threshold is true (left).
        both = np.concatenate([features, np.where(np.isnan(features), -np.inf, features)],
                              axis=1)
        if rows == 1:
            # Decide every split at once, then follow the decisions down all trees together.
            following = np.where(both[0, self.source] <= self.threshold, self.left, self.right)
            node = self.roots
            for _ in range(self.depth):
                node = following[node]
        else:
            # Deciding every split for every row touches rows x nodes values (and, past a few
            # rows, fresh memory each time): walk level by level instead, one path per tree.
            flat = both.ravel()
            row_start = (np.arange(rows, dtype=np.intp) * both.shape[1])[:, None]
            node = np.broadcast_to(self.roots, (rows, len(self.roots)))
            for _ in range(self.depth):
                values = flat[row_start + self.source[node]]
                node = np.where(values <= self.threshold[node], self.left[node],
                                self.right[node])
        leaves = self.value[node].reshape(rows, len(self.roots))
        raw = np.empty((rows, self.n_outputs), dtype=np.float64)
        for k in range(self.n_outputs):
            own = leaves if self._single_output else leaves[:, self.tree_class == k]
            terms = np.concatenate([np.full((rows, 1), self.baseline[k]), own], axis=1)
            raw[:, k] = np.cumsum(terms, axis=1)[:, -1]
        return raw

    def _matches(self, estimator) -> bool:
        rng = np.random.default_rng(0)
        splits = self.feature[self.left != np.arange(len(self.left))]
        thresholds = self.threshold[self.left != np.arange(len(self.left))]
        probe = rng.normal(size=(64, self.n_features))
        if len(splits):  # values on, just below and just above the split points
            pick = rng.integers(0, len(splits), size=(64, self.n_features))
            for column in range(self.n_features):
                own = np.flatnonzero(splits == column)
                if len(own):
                    chosen = thresholds[own[pick[:, column] % len(own)]]
                    probe[:, column] = np.where(np.arange(64) % 3 == 0, chosen,
                                                chosen + rng.normal(scale=1e-9, size=64))
        probe[rng.random(probe.shape) < 0.15] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = estimator._raw_predict(probe)
        # Both walks: all probe rows at once, and each row alone.
        return np.array_equal(self.raw_predict(probe), expected) and all(
            np.array_equal(self.raw_predict(probe[i:i + 1]), expected[i:i + 1])
            for i in range(len(probe)))
