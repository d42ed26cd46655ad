"""Factories for test data: real datasets bundled with scikit-learn written as batch files, and
the matching project definitions."""

from __future__ import annotations

import io

import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes

CANCER_PATTERN = r"^cancer_\d{8}_\d{6}\.csv$"


def cancer_frame() -> pd.DataFrame:
    """Breast-cancer data with an id column and a text target (malignant / benign)."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    frame.insert(0, "sample_id", range(1000, 1000 + len(frame)))
    return frame


def cancer_rows(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct rows like the breast-cancer data (resampled, measurements jittered by
    about 1%), for trainings that must take a while."""
    import numpy as np

    rng = np.random.default_rng(seed)
    frame = cancer_frame().sample(n=n, replace=True, random_state=seed).reset_index(drop=True)
    measures = [c for c in frame.columns if c not in ("sample_id", "diagnosis")]
    frame[measures] = frame[measures] * rng.normal(1, 0.01, size=(n, len(measures)))
    frame["sample_id"] = range(1, n + 1)
    return frame


def diabetes_frame() -> pd.DataFrame:
    data = load_diabetes(as_frame=True)
    return data.frame.rename(columns={"target": "progression"})


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def batch_name(prefix: str, n: int) -> str:
    return f"{prefix}_{20260101 + n:08d}_{120000 + n:06d}.csv"


def batch_files(frame: pd.DataFrame, prefix: str, parts: int) -> list[tuple[str, bytes]]:
    """Split ``frame`` into ``parts`` batch files named like ``prefix_20260101_120000.csv``."""
    size = -(-len(frame) // parts)
    return [(batch_name(prefix, i), csv_bytes(frame.iloc[i * size:(i + 1) * size]))
            for i in range(parts)]


def schema_of(frame: pd.DataFrame, *, target: str, pattern: str,
              ignored: tuple[str, ...] = ()) -> dict:
    kinds = {"int64": "integer", "float64": "float", "bool": "boolean"}
    return {"filename_pattern": pattern,
            "columns": [{"name": c, "type": kinds.get(str(t), "category")}
                        for c, t in frame.dtypes.items()],
            "target": target, "ignored": list(ignored)}


def cancer_project(name: str = "Cancer screening", **overrides) -> dict:
    frame = cancer_frame()
    return {"name": name, "description": "Diagnose from cell measurements.",
            "problem_type": "classification",
            "recipients": ["team@example.com"],
            "schema": schema_of(frame, target="diagnosis", pattern=CANCER_PATTERN,
                                ignored=("sample_id",)),
            **overrides}
