"""The compiled real-time paths (project_library/compiled.py) give exactly what scikit-learn
gives, on real data with missing values, and step aside for anything they do not cover."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.ensemble._hist_gradient_boosting.gradient_boosting import BaseHistGradientBoosting
from sklearn.pipeline import Pipeline

from entity.project import BatchSchema
from project_library.compiled import RAW_PREDICT, CompiledTrees, NumericFeatures
from project_library.preprocessing import FeaturePlan, build_preprocessor
from project_library.serving import ServingModel, records_frame

pytestmark = pytest.mark.slow  # fits models: `make test-fast` leaves it out


def with_holes(frame: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.mask(rng.random(frame.shape) < share)


def fitted(loader, estimator, *, scale: bool = False, share: float = 0.1):
    data = loader(as_frame=True)
    X = with_holes(data.data, share, seed=1)  # noqa: N806 - scikit-learn's naming
    plan = FeaturePlan(numeric=list(X.columns))
    model = Pipeline([("preprocess", build_preprocessor(plan, scale=scale)),
                      ("model", estimator)]).fit(X, data.target)
    return model, with_holes(data.data, share, seed=2)


@pytest.mark.parametrize("scale", [False, True])
def test_numeric_features_equal_the_pipeline_bit_for_bit(scale):
    model, X = fitted(load_breast_cancer, HistGradientBoostingClassifier(max_iter=20),  # noqa: N806
                      scale=scale)
    preprocess = model.named_steps["preprocess"]
    compiled = NumericFeatures.compile([preprocess])
    assert compiled is not None
    shuffled = X[list(reversed(X.columns))].assign(extra=1.0)  # other order, an extra column
    mixed = X.assign(**{X.columns[0]: X[X.columns[0]].round().astype("Int64")})
    unused_id = X.assign(row_id=pd.array(range(len(X)), dtype="Int64"))  # not a feature
    for frame in (X, shuffled, X.head(1), X.round().astype("Int64"), mixed, unused_id):
        assert np.array_equal(compiled.transform(frame), preprocess.transform(frame),
                              equal_nan=True)
    with pytest.raises(KeyError):
        compiled.transform(X.drop(columns=[X.columns[3]]))


def test_pipelines_with_categories_stay_on_scikit_learns_path():
    plan = FeaturePlan(numeric=["a"], one_hot=["c"])
    frame = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "c": ["x", "y", "x", None]})
    preprocess = build_preprocessor(plan, scale=False).fit(frame)
    assert NumericFeatures.compile([preprocess]) is None


@pytest.mark.parametrize("loader,estimator", [
    (load_breast_cancer, HistGradientBoostingClassifier(max_iter=60, random_state=0)),
    (load_wine, HistGradientBoostingClassifier(max_iter=30, random_state=0)),
    (load_diabetes, HistGradientBoostingRegressor(max_iter=60, random_state=0)),
])
def test_compiled_trees_equal_scikit_learn_exactly(loader, estimator):
    model, X = fitted(loader, estimator, share=0.2)  # noqa: N806
    estimator = model.named_steps["model"]
    trees = CompiledTrees.compile(estimator)
    assert trees is not None
    raw_features = X.to_numpy()  # with NaN: the trees' own missing-value routes
    features = model.named_steps["preprocess"].transform(X)
    one_by_one = [raw_features[i:i + 1] for i in range(20)]  # the one-row walk, with NaN
    assert np.isnan(np.concatenate(one_by_one)).any()
    for rows in (raw_features, features, features[:1], *one_by_one):
        assert np.array_equal(trees.raw_predict(rows), estimator._raw_predict(rows))
    with pytest.raises(ValueError, match="features"):
        trees.raw_predict(features[:, :3])


def test_categorical_boosting_is_not_compiled():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 4, 200), rng.normal(size=200)])  # noqa: N806
    y = (X[:, 0] % 2 == 0) ^ (X[:, 1] > 0)
    estimator = HistGradientBoostingClassifier(categorical_features=[0], max_iter=10).fit(X, y)
    assert CompiledTrees.compile(estimator) is None


def serve(model, X, classes):  # noqa: N803
    schema = BatchSchema.from_dict({"filename_pattern": "^x$", "target": "y", "columns": [
        *({"name": c, "type": "float"} for c in X.columns), {"name": "y", "type": "float"}]})
    serving = ServingModel(version=None, model=model, schema=schema,
                           problem_type="classification" if classes else "regression",
                           classes=classes)
    return serving, schema


def assert_serving_answers_what_the_pipeline_answers(serving, schema, model, X, classes):  # noqa: N803
    records = [{k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
               for row in X.head(40).to_dict(orient="records")]
    for batch in (records[:1], records):
        frame = records_frame(batch, schema)
        answer = serving.predict(frame)
        assert answer["predictions"] == model.predict(frame).tolist()
        if classes:
            expected = model.predict_proba(frame)
            got = [[row[str(c)] for c in classes] for row in answer["probabilities"]]
            assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("loader,estimator,classes", [
    (load_wine, HistGradientBoostingClassifier(max_iter=30, random_state=0), [0, 1, 2]),
    (load_diabetes, HistGradientBoostingRegressor(max_iter=40, random_state=0), []),
])
def test_serving_answers_what_the_pipeline_answers(loader, estimator, classes):
    model, X = fitted(loader, estimator)  # noqa: N806
    serving, schema = serve(model, X, classes)
    assert serving._numeric is not None and serving._trees is not None
    assert_serving_answers_what_the_pipeline_answers(serving, schema, model, X, classes)


@pytest.fixture
def raw_predict_adapter():
    """RAW_PREDICT probed afresh in the test (and again after it)."""
    RAW_PREDICT.forget()
    yield RAW_PREDICT
    RAW_PREDICT.forget()


def test_the_raw_predict_adapter_passes_on_the_pinned_scikit_learn(raw_predict_adapter, caplog):
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        assert raw_predict_adapter.check()
    assert not [r for r in caplog.records if r.name == "trainyard.adapters"]


@pytest.mark.parametrize("change", ["gone", "another layout"])
@pytest.mark.parametrize("loader,estimator,classes", [
    (load_breast_cancer, HistGradientBoostingClassifier(max_iter=20, random_state=0), [0, 1]),
    (load_diabetes, HistGradientBoostingRegressor(max_iter=20, random_state=0), []),
])
def test_a_changed_raw_predict_falls_back_to_predict_with_the_same_answers(
        raw_predict_adapter, monkeypatch, caplog, change, loader, estimator, classes):
    """A scikit-learn whose private _raw_predict changed, while predict and predict_proba
    still work: the code outside scikit-learn sees the change, scikit-learn's own does not."""
    model, X = fitted(loader, estimator)  # noqa: N806
    real = BaseHistGradientBoosting._raw_predict

    def changed(self, X, *args, **kwargs):  # noqa: N803
        raw = real(self, X, *args, **kwargs)
        if sys._getframe(1).f_globals.get("__name__", "").startswith("sklearn."):
            return raw
        if change == "gone":
            raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                 "'_raw_predict'")
        return raw.T.copy()  # (outputs, rows) instead of (rows, outputs)

    monkeypatch.setattr(BaseHistGradientBoosting, "_raw_predict", changed)
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        serving, schema = serve(model, X, classes)
        assert_serving_answers_what_the_pipeline_answers(serving, schema, model, X, classes)
    assert serving._trees is None
    (line,) = [r.getMessage() for r in caplog.records if r.name == "trainyard.adapters"]
    assert line.startswith("sklearn-raw-predict: not using scikit-learn's HistGradientBoosting "
                           "_raw_predict") and line.endswith("using predict and predict_proba "
                                                             "instead")


def test_float_records_fast_path_builds_the_general_paths_frame(monkeypatch):
    """Records of float columns take a one-array path (project_library/serving.py); on random
    records (ints and floats, nulls, the optional target and ignored columns sent or not, sent
    as numbers or as text) it gives the very frame the value-by-value path gives, or steps
    aside for it."""
    import project_library.serving as serving

    schema = BatchSchema.from_dict({
        "filename_pattern": "^x$", "target": "y", "ignored": ["note", "w"], "columns": [
            {"name": "a", "type": "float"}, {"name": "y", "type": "float"},
            {"name": "b", "type": "float"}, {"name": "w", "type": "float"},
            {"name": "note", "type": "text"}]})
    plan = serving.RecordPlan(schema)
    rng = np.random.default_rng(3)
    choices = (lambda: float(rng.normal()), lambda: int(rng.integers(-9, 9)), lambda: None,
               lambda: "1.5")

    def value(weights):
        return choices[rng.choice(4, p=weights)]()

    fast_taken = 0
    for _ in range(300):
        records = []
        for _ in range(int(rng.integers(1, 4))):
            record = {"a": value([0.6, 0.3, 0.1, 0.0]), "b": value([0.6, 0.3, 0.1, 0.0])}
            for optional in ("y", "w", "note"):
                if rng.random() < 0.3:
                    record[optional] = value([0.4, 0.2, 0.3, 0.1])
            records.append(record)
        fast = serving.records_frame(records, schema, plan)
        with monkeypatch.context() as patched:
            patched.setattr(serving, "_float_frame", lambda *args: None)
            general = serving.records_frame(records, schema)
        pd.testing.assert_frame_equal(fast, general, check_dtype=True)
        fast_taken += serving._float_frame(records, schema, plan) is not None
    assert 50 < fast_taken < 250  # both paths were exercised
