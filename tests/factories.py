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


# -- a project with a real, small, servable model (no training run) ----------------------------

NUMERIC_SCHEMA = {"filename_pattern": r"^churn_\d+\.csv$",
                  "columns": [{"name": "tenure", "type": "float"},
                              {"name": "spend", "type": "float"},
                              {"name": "churned", "type": "category"}],
                  "target": "churned", "ignored": []}


def churn_rows(n: int, seed: int = 0) -> list[dict]:
    """Labeled rows whose label follows tenure + spend (so a linear model gets them right)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        tenure, spend = float(rng.uniform(0, 10)), float(rng.uniform(0, 10))
        rows.append({"tenure": round(tenure, 3), "spend": round(spend, 3),
                     "churned": "yes" if tenure + spend < 10 else "no"})
    return rows


def servable_project(platform, owner, *, name: str, members: dict | None = None,
                     metrics: dict | None = None, tags: list | None = None):
    """A classification project owned by ``owner`` with v1 active: a LogisticRegression
    fitted here on :func:`churn_rows`, saved with its checksums like a trained version."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from entity.model_version import ModelVersion
    from entity.project import BatchSchema, Project, slugify
    from project_library.model_artifacts import save_model_version

    project = Project(name=name, slug=slugify(name), problem_type="classification",
                      owner_id=owner.id, schema=BatchSchema.from_dict(NUMERIC_SCHEMA),
                      members=dict(members or {}), description=f"{name} description",
                      settings={"tags": list(tags or [])})
    platform.db.projects.add(project)
    files = platform.resolver.files(project)
    files.ensure_layout()
    frame = pd.DataFrame(churn_rows(200))
    model = LogisticRegression().fit(frame[["tenure", "spend"]], frame["churned"])
    artifacts = save_model_version(files, 1, model=model, documents={"metrics.json": {}})
    platform.db.model_versions.add(ModelVersion(
        project_id=project.id, version=1, execution_id="e1", algorithm="LogisticRegression",
        metrics=metrics or {"accuracy": 0.95, "f1_macro": 0.94, "roc_auc": 0.99},
        params={"C": 1.0}, schema=NUMERIC_SCHEMA, problem_type="classification",
        data_fingerprint={"rows": 200, "columns": 3, "files": [{"name": "churn_1.csv"}],
                          "class_balance": {"yes": 100, "no": 100},
                          "period": {"column": "day", "from": "2026-01-01",
                                     "to": "2026-03-31"}},
        artifacts=artifacts))
    platform.db.projects.set_versions(project.id, next_version=2, active_version=1)
    return platform.db.projects.get(project.id)
