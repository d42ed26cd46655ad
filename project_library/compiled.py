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

from project_library.preprocessing import SelectColumns, to_float


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
        self._positions: dict[tuple, np.ndarray] = {}

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
        key = tuple(frame.columns)
        positions = self._positions.get(key)
        if positions is None:
            positions = frame.columns.get_indexer(self.columns)
            if (positions < 0).any():  # the pipeline's own error for a missing column
                frame[self.columns]
            if len(self._positions) < 64:
                self._positions[key] = positions
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

    All trees are walked together, one level per step, over arrays of their nodes (a leaf
    points to itself). The sum follows scikit-learn's own order (the baseline, then each
    tree's leaf value, added one after the other), so the result is the same float, not just
    a close one. Worth it for small batches only: the array walk costs time per row and level
    that scikit-learn's compiled loop does not (on 100 trees of depth 14: 85 us against 750 us
    for one row, but the two meet near 80 rows), so :attr:`MAX_ROWS` bounds its use.
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
        self.roots = offsets
        self.feature = np.where(leaf, 0, table["feature_idx"]).astype(np.intp)
        self.threshold = table["num_threshold"].astype(np.float64)
        self.missing_left = table["missing_go_to_left"].astype(bool)
        self.left = np.where(leaf, own, owner + table["left"].astype(np.intp))
        self.right = np.where(leaf, own, owner + table["right"].astype(np.intp))
        self.value = table["value"].astype(np.float64)
        self.depth = int(table["depth"].max()) if len(table) else 0
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).ravel()
        self.n_outputs = int(estimator.n_trees_per_iteration_)
        self.n_features = int(estimator.n_features_in_)

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
        flat = np.ascontiguousarray(features).ravel()
        row_start = (np.arange(rows, dtype=np.intp) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (rows, len(self.roots)))
        for _ in range(self.depth):
            values = flat[row_start + self.feature[node]]
            go_left = (values <= self.threshold[node]) | (np.isnan(values)
                                                          & self.missing_left[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node]
        raw = np.empty((rows, self.n_outputs), dtype=np.float64)
        for k in range(self.n_outputs):
            terms = np.concatenate([np.full((rows, 1), self.baseline[k]),
                                    leaves[:, self.tree_class == k]], axis=1)
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
        return np.array_equal(self.raw_predict(probe), expected)
