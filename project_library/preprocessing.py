"""Turning a project's typed batch frame into model features: one scikit-learn pipeline.

Everything here is defined at module level so that a pickled pipeline can be loaded again
(no lambdas, no closures).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from entity.project import BatchSchema
from project_library.values import parse_dates

#: categorical columns with at most this many distinct values are one-hot encoded
MAX_ONE_HOT_CATEGORIES = 20
DATE_PARTS = ("year", "month", "day", "dayofweek")
_DATE_ATTRIBUTES = {"year": "year", "month": "month", "day": "day", "dayofweek": "day_of_week"}
#: a text column is date-like when at least this share of its values read as dates
DATE_LIKE_SHARE = 0.95
#: rows are in time order when at least this share of consecutive time stamps do not go back
TIME_ORDER_SHARE = 0.95
#: ... and at least this share of the rows have one, with at least this many distinct values
TIME_ORDER_PRESENT = 0.9
TIME_ORDER_DISTINCT = 10
_DATE_HINT = r"[-/:.]|\d{4}|[A-Za-z]{3}"
_PLAIN_NUMBER = r"^[+-]?\d+(\.\d*)?$"


class SelectColumns(BaseEstimator, TransformerMixin):
    """Keep only ``columns`` of a DataFrame, in that order (extra input columns are ignored)."""

    def __init__(self, columns=None):
        self.columns = columns

    def fit(self, X, y=None):  # noqa: N803 - scikit-learn's naming
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X):  # noqa: N803
        return X[list(self.columns)]

    def get_feature_names_out(self, input_features=None):
        return np.asarray(list(self.columns), dtype=object)


class DateFeatures(BaseEstimator, TransformerMixin):
    """Expand date columns into numeric year, month, day and day-of-week features (NaN if no
    date)."""

    def fit(self, X, y=None):  # noqa: N803
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X):  # noqa: N803
        parts = {}
        for column in X.columns:
            values = pd.to_datetime(X[column], errors="coerce")
            for part in DATE_PARTS:
                part_values = getattr(values.dt, _DATE_ATTRIBUTES[part])
                parts[f"{column}_{part}"] = part_values.astype("float64")
        return pd.DataFrame(parts, index=X.index)

    def get_feature_names_out(self, input_features=None):
        return np.asarray([f"{c}_{p}" for c in self.feature_names_in_ for p in DATE_PARTS],
                          dtype=object)


def to_float(X):  # noqa: N803
    """Cast a frame (nullable booleans or integers) to a float64 array with NaN for missing
    values (one conversion, no intermediate nullable frame: this runs on every fit and
    prediction)."""
    return pd.DataFrame(X).to_numpy(dtype="float64", na_value=np.nan)


def to_text(X):  # noqa: N803
    """Cast a frame of categories to object strings with NaN for missing values."""
    frame = pd.DataFrame(X)
    return frame.astype(object).where(frame.notna(), np.nan)


def as_dates(values: pd.Series) -> pd.Series | None:
    """The values of a text column read as dates when the column is date-like (at least 95 %
    of its values written as dates, none a plain number), else None."""
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if present.empty or not present.str.contains(_DATE_HINT).all() or \
            present.str.match(_PLAIN_NUMBER).any():
        return None
    parsed = parse_dates(values.astype(object).where(values.notna(), np.nan))
    if parsed.notna().sum() < DATE_LIKE_SHARE * len(present):
        return None
    return parsed


def time_order_column(frame: pd.DataFrame, schema: BatchSchema
                      ) -> tuple[str, np.ndarray] | None:
    """The column that puts the rows in time order, with its time stamps (float nanoseconds,
    NaN where missing), or None.

    A column counts when it is typed ``date`` or is a date-like text column (:func:`as_dates`),
    at least 90 % of the rows have a value, it has at least 10 distinct ones, and at least 95 %
    of consecutive values in row order do not go back in time: the rows are a log or a series
    (a birth-date column in a customer list is not). The target is never the column.
    """
    for spec in schema.columns:
        if spec.name == schema.target or spec.name not in frame:
            continue
        values = frame[spec.name]
        if spec.type == "date":
            stamps = pd.to_datetime(values, errors="coerce")
        elif spec.type == "category":
            stamps = as_dates(values)
            if stamps is None:
                continue
        else:
            continue
        present = stamps.dropna()
        if len(present) < TIME_ORDER_PRESENT * len(frame) or \
                present.nunique() < TIME_ORDER_DISTINCT:
            continue
        steps = np.diff(present.to_numpy().astype("datetime64[ns]").astype("int64"))
        if len(steps) and np.mean(steps >= 0) >= TIME_ORDER_SHARE:
            numbers = stamps.to_numpy().astype("datetime64[ns]").astype("int64").astype(float)
            numbers[stamps.isna().to_numpy()] = np.nan
            return spec.name, numbers
    return None


@dataclass
class FeaturePlan:
    """Which columns feed the model, how, and which were dropped (with the reason)."""

    numeric: list[str] = field(default_factory=list)
    boolean: list[str] = field(default_factory=list)
    one_hot: list[str] = field(default_factory=list)
    ordinal: list[str] = field(default_factory=list)
    dates: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    #: columns typed otherwise that look like dates -> the proposal to retype them
    retype: dict[str, str] = field(default_factory=dict)

    @property
    def used(self) -> list[str]:
        return self.numeric + self.boolean + self.one_hot + self.ordinal + self.dates


def plan_features(frame: pd.DataFrame, schema: BatchSchema) -> FeaturePlan:
    """Decide how each feature column of ``frame`` is used, from the schema and the data.

    Ignored columns are dropped; so are columns with a single value (nothing to learn) and
    id-like columns (a different text value in every row). Category columns with at most
    :data:`MAX_ONE_HOT_CATEGORIES` values are one-hot encoded, others ordinal encoded.
    """
    plan = FeaturePlan()
    for name in schema.ignored:
        plan.dropped[name] = "ignored in the schema"
    rows = len(frame)
    for spec in schema.feature_columns:
        values = frame[spec.name]
        distinct = int(values.nunique(dropna=True))
        if distinct == 0:
            plan.dropped[spec.name] = "it has no values"
            continue
        if distinct == 1:
            plan.dropped[spec.name] = "it has the same value in every row that has one"
            continue
        looks_dated = spec.type == "category" and as_dates(values) is not None
        if looks_dated:
            plan.retype[spec.name] = (
                "its values look like dates but it is typed 'category': retype it as 'date' "
                "in the schema, and the model gets its calendar features (year, month, day, "
                "day of week)")
        if spec.type == "category" and rows >= 20 and distinct == rows:
            plan.dropped[spec.name] = (
                "it looks like a date typed 'category' with a different value in every row; "
                "retype it as 'date' in the schema to use it" if looks_dated else
                "it looks like an identifier (a different value in every row)")
            continue
        if spec.type in ("integer", "float"):
            plan.numeric.append(spec.name)
        elif spec.type == "boolean":
            plan.boolean.append(spec.name)
        elif spec.type == "date":
            plan.dates.append(spec.name)
        elif distinct <= MAX_ONE_HOT_CATEGORIES:
            plan.one_hot.append(spec.name)
        else:
            plan.ordinal.append(spec.name)
    return plan


def build_preprocessor(plan: FeaturePlan, *, scale: bool) -> Pipeline:
    """The feature pipeline for ``plan``; ``scale`` adds standardisation (linear models, KNN).

    Numeric: median imputation; boolean: 0/1 with most-frequent imputation; low-cardinality
    categories: most-frequent imputation + one-hot (unknown values ignored); high-cardinality:
    most-frequent imputation + ordinal codes (unknown values -1); dates: year, month, day,
    day of week with median imputation. When every used column is numeric the branches are
    skipped: select, cast, impute (and scale) in one pipeline.
    """

    def scaled(steps: list) -> list:
        return [*steps, ("scale", StandardScaler())] if scale else steps

    if plan.numeric and plan.used == plan.numeric:
        # Only numeric columns: one straight pipeline; a ColumnTransformer would only add
        # its splitting and stacking to every fit and prediction.
        return Pipeline([
            ("select", SelectColumns(plan.used)),
            *scaled([("to_float", FunctionTransformer(to_float, feature_names_out="one-to-one")),
                     ("impute", SimpleImputer(strategy="median"))]),
        ])

    branches = []
    if plan.numeric:
        branches.append(("numeric", Pipeline(scaled([
            ("to_float", FunctionTransformer(to_float, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median")),
        ])), plan.numeric))
    if plan.boolean:
        branches.append(("boolean", Pipeline([
            ("to_float", FunctionTransformer(to_float, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent")),
        ]), plan.boolean))
    if plan.one_hot:
        branches.append(("one_hot", Pipeline([
            ("to_text", FunctionTransformer(to_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), plan.one_hot))
    if plan.ordinal:
        branches.append(("ordinal", Pipeline(scaled([
            ("to_text", FunctionTransformer(to_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
        ])), plan.ordinal))
    if plan.dates:
        branches.append(("dates", Pipeline(scaled([
            ("expand", DateFeatures()),
            ("impute", SimpleImputer(strategy="median")),
        ])), plan.dates))
    return Pipeline([
        ("select", SelectColumns(plan.used)),
        ("columns", ColumnTransformer(branches, remainder="drop", verbose_feature_names_out=True)),
    ])
