"""Watching a model for data drift: a reference profile at training, the PSI at prediction.

At training, :func:`reference_profile` summarises every feature of the training part compactly
(numeric: quantile bin edges and the share of rows in each bin; categorical and yes/no: the
shares of the most frequent values; both: the share of missing values). It is saved as
``reference_profile.json`` in the model version folder. At prediction, :func:`drift_report`
(or a :class:`DriftAccumulator` fed chunk by chunk) bins the new rows the same way and computes
the population stability index of each feature:

    PSI = sum over bins of (current share - reference share) * ln(current share / reference share)

with shares floored at :data:`SHARE_FLOOR` so that an empty bin stays finite. PSI below 0.1 is
``ok``, below 0.25 a ``warning``, from 0.25 ``drift``. With fewer than :data:`MIN_ROWS` rows the
PSI is reported but not judged (status ``insufficient_data``): sampling noise alone would make it
large. Date columns are not profiled: new data always lies later in time.

The profile also holds ``prediction``: the training target's distribution binned the same way
(the classes of a classification, quantile bins of a regression), against which live monitoring
compares the distribution of the predictions. Beside the PSI, :func:`binned_test` gives a test
suited to the column type computed from the binned counts alone (so that only the profile is
needed): a Kolmogorov-Smirnov distance over the ordered bins of a numeric column, a chi-square
goodness of fit over the values of a categorical one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from project_library.preprocessing import FeaturePlan

PROFILE_VERSION = 1
NUMERIC_BINS = 10
TOP_CATEGORIES = 20
SHARE_FLOOR = 1e-4
WARNING_PSI = 0.1
DRIFT_PSI = 0.25
MIN_ROWS = 50
OTHER = "__other__"
MISSING = "__missing__"


def _numeric_values(values: pd.Series) -> np.ndarray:
    return pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)


def _text_values(values: pd.Series) -> pd.Series:
    series = pd.Series(values)
    return series.astype(object).where(series.notna(), None).map(
        lambda v: None if v is None else str(v))


def _numeric_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Counts per bin ``(-inf, e0], (e0, e1], ..., (e_last, inf)``, then the missing count."""
    missing = np.isnan(values)
    bins = np.searchsorted(np.asarray(edges, dtype="float64"), values[~missing], side="left")
    counts = np.bincount(bins, minlength=len(edges) + 1).astype("float64")
    return np.append(counts, float(missing.sum()))


def _categorical_counts(values: pd.Series, top: list[str]) -> np.ndarray:
    """Counts per value of ``top``, then every other value, then the missing count."""
    text = _text_values(values)
    missing = int(text.isna().sum())
    frequencies = text.dropna().value_counts()
    known = [float(frequencies.get(value, 0)) for value in top]
    other = float(frequencies.sum()) - sum(known)
    return np.asarray([*known, other, float(missing)])


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [round(float(c / total), 6) if total else 0.0 for c in counts]


def reference_profile(frame: pd.DataFrame, plan: FeaturePlan) -> dict:
    """The compact per-feature profile of ``frame`` (the training part) for drift checks.

    Args:
        frame: the typed training rows.
        plan: which columns feed the model (numeric, yes/no, categorical; dates are skipped).

    Returns:
        ``{"version", "rows", "features": {name: {"kind": "numeric", "edges", "shares"} or
        {"kind": "categorical", "values", "shares"}}}``; ``shares`` ends with the share of
        other values (categorical) and of missing values (both). JSON-serialisable.
    """
    features: dict[str, dict] = {}
    for name in plan.numeric:
        values = _numeric_values(frame[name])
        present = values[~np.isnan(values)]
        if not len(present):
            continue
        quantiles = np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)[1:-1])
        edges = sorted({float(q) for q in quantiles})
        features[name] = {"kind": "numeric", "edges": edges,
                          "shares": _shares(_numeric_counts(values, edges))}
    for name in plan.boolean + plan.one_hot + plan.ordinal:
        text = _text_values(frame[name]).dropna()
        top = [str(v) for v in text.value_counts().index[:TOP_CATEGORIES]]
        features[name] = {"kind": "categorical", "values": top,
                          "shares": _shares(_categorical_counts(frame[name], top))}
    return {"version": PROFILE_VERSION, "rows": len(frame), "features": features}


def target_profile(y, problem_type: str) -> dict | None:
    """The training target ``y`` profiled like a feature: categorical over the classes of a
    classification (all of them, however many), numeric quantile bins for a regression; None
    when ``y`` is empty."""
    if not len(y):
        return None
    if problem_type == "classification":
        text = _text_values(pd.Series(y)).dropna()
        values = [str(v) for v in text.value_counts().index]
        return {"kind": "categorical", "values": values,
                "shares": _shares(_categorical_counts(pd.Series(y), values))}
    values = _numeric_values(pd.Series(y))
    present = values[~np.isnan(values)]
    edges = sorted({float(q) for q in np.quantile(present, np.linspace(0, 1, NUMERIC_BINS + 1)
                                                   [1:-1])})
    return {"kind": "numeric", "edges": edges, "shares": _shares(_numeric_counts(values, edges))}


def bin_counts(spec: dict, values) -> np.ndarray:
    """The counts of ``values`` (a list or series) in the bins of one profiled column."""
    if spec["kind"] == "numeric":
        numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return _numeric_counts(numbers.to_numpy(dtype="float64", na_value=np.nan),
                               spec["edges"])
    return _categorical_counts(pd.Series(values, dtype=object), spec["values"])


def binned_test(spec: dict, reference_rows: int, counts: np.ndarray) -> dict:
    """A two-distribution test from binned counts only, suited to the column's kind.

    Numeric: the Kolmogorov-Smirnov distance between the reference and current distributions
    over the ordered bins (missing values left out), with the asymptotic p-value for the
    effective sample size ``n·m/(n+m)``. It can only see differences between bins, so it is a
    lower bound of the KS distance of the raw values. Categorical: Pearson's chi-square of the
    current counts against the counts the reference shares expect (shares floored like the
    PSI's), with ``bins - 1`` degrees of freedom.

    Returns:
        ``{"test": "ks" | "chi2", "statistic", "p_value"}``; statistic and p-value are None
        when there are no current rows.
    """
    from scipy import special, stats

    counts = np.asarray(counts, dtype="float64")
    shares = np.asarray(spec["shares"], dtype="float64")
    if spec["kind"] == "numeric":
        current, reference = counts[:-1], shares[:-1]  # the last bin holds the missing
        m, ref_total = current.sum(), reference.sum()
        if not m or not ref_total:
            return {"test": "ks", "statistic": None, "p_value": None}
        distance = float(np.max(np.abs(np.cumsum(current) / m - np.cumsum(reference)
                                       / ref_total)))
        n = max(reference_rows * ref_total, 1.0)
        effective = math.sqrt(n * m / (n + m))
        p_value = float(special.kolmogorov((effective + 0.12 + 0.11 / effective) * distance))
        return {"test": "ks", "statistic": round(distance, 6),
                "p_value": float(f"{min(max(p_value, 0.0), 1.0):.6g}")}
    total = counts.sum()
    if not total:
        return {"test": "chi2", "statistic": None, "p_value": None}
    expected = np.maximum(shares, SHARE_FLOOR)
    expected = expected / expected.sum() * total
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    p_value = float(stats.chi2.sf(statistic, max(len(counts) - 1, 1)))
    return {"test": "chi2", "statistic": round(statistic, 4),
            "p_value": float(f"{p_value:.6g}")}


def population_stability_index(reference: list[float], current: list[float]) -> float:
    """PSI between two share vectors over the same bins (shares floored at 1e-4)."""
    ref = np.maximum(np.asarray(reference, dtype="float64"), SHARE_FLOOR)
    cur = np.maximum(np.asarray(current, dtype="float64"), SHARE_FLOOR)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def drift_status(psi: float) -> str:
    """``ok`` below 0.1, ``warning`` below 0.25, ``drift`` from 0.25."""
    if psi >= DRIFT_PSI:
        return "drift"
    return "warning" if psi >= WARNING_PSI else "ok"


class DriftAccumulator:
    """Bins new rows against a reference profile chunk by chunk (no copy of all the rows)."""

    def __init__(self, reference: dict):
        self.reference = reference
        self.rows = 0
        self.counts = {name: np.zeros(len(spec["shares"]))
                       for name, spec in reference.get("features", {}).items()}

    def add(self, frame: pd.DataFrame) -> None:
        """Count the rows of ``frame`` (profiled columns that are absent are skipped)."""
        self.rows += len(frame)
        for name, spec in self.reference.get("features", {}).items():
            if name not in frame.columns:
                continue
            if spec["kind"] == "numeric":
                counts = _numeric_counts(_numeric_values(frame[name]), spec["edges"])
            else:
                counts = _categorical_counts(frame[name], spec["values"])
            self.counts[name] += counts

    def report(self) -> dict:
        """``{"rows", "features": {name: {"psi", "status"}}, "drifted": [names],
        "warnings": [names]}``, features in profile order; ``drifted`` lists the features whose
        PSI is 0.25 or more, ``warnings`` those between 0.1 and 0.25."""
        judged = self.rows >= MIN_ROWS
        features: dict[str, dict] = {}
        for name, counts in self.counts.items():
            if not counts.sum():
                continue
            psi = population_stability_index(self.reference["features"][name]["shares"],
                                             _shares(counts))
            psi = round(psi, 4) if math.isfinite(psi) else None
            status = drift_status(psi) if judged and psi is not None else "insufficient_data"
            features[name] = {"psi": psi, "status": status}
        return {"rows": int(self.rows), "features": features,
                "drifted": [n for n, f in features.items() if f["status"] == "drift"],
                "warnings": [n for n, f in features.items() if f["status"] == "warning"]}


def drift_report(reference: dict, current: pd.DataFrame) -> dict:
    """The PSI of every profiled feature of ``current`` against the ``reference`` profile.

    Args:
        reference: a profile made by :func:`reference_profile` (``reference_profile.json``).
        current: the new typed rows.

    Returns:
        ``{"rows", "features": {name: {"psi": float, "status": "ok|warning|drift"}},
        "drifted": [names], "warnings": [names]}`` (status ``insufficient_data`` when fewer than
        50 rows came in).
    """
    accumulator = DriftAccumulator(reference)
    accumulator.add(current)
    return accumulator.report()
