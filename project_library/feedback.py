"""Ground truth for past predictions: labels checked against the schema's target and joined to
their prediction records.

A label is ``(prediction_id, actual)``. :func:`join_labels` keeps every good one and refuses the
others with a reason each: an unknown id, another project's prediction, a prediction labeled
already (or twice in the same batch), a missing value, or one of the wrong type for the target.
The API, the client and CLI (through the API) and the feedback files of the file manager
(``feedback/``, processed by the ``feedback`` execution kind) all come here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from entity.prediction_record import PredictionRecordRepository
from entity.project import BatchSchema, ColumnSpec
from project_library.values import json_column, parse_column

#: the id column of a feedback file
ID_COLUMN = "prediction_id"
#: any CSV name: feedback files are not named like batch files
FEEDBACK_FILE_PATTERN = r".+\.csv"
#: labels taken in one API call
MAX_LABELS = 10_000


def feedback_schema(schema: BatchSchema) -> BatchSchema:
    """What a feedback file looks like: ``prediction_id`` and the project's target column."""
    target = schema.column(schema.target) if schema.target else None
    columns = [ColumnSpec(ID_COLUMN, "category")]
    if target is not None:
        columns.append(ColumnSpec(target.name, target.type))
    return BatchSchema(filename_pattern=FEEDBACK_FILE_PATTERN, columns=columns,
                       target=schema.target, ignored=[])


def label_values(values: list, column_type: str) -> tuple[list, dict[int, str]]:
    """JSON values of a target column read by the schema's rules: the typed values as plain
    JSON (None when missing) and the reason of each refused position."""
    typed, reasons = json_column(values, column_type)
    out: list = []
    for position, value in enumerate(list(typed)):
        if position in reasons:
            out.append(None)
            continue
        out.append(_plain(value, column_type))
    return out, reasons


def _plain(value, column_type: str):
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if column_type == "integer":
        return int(round(value))
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


@dataclass
class JoinResult:
    """What :func:`join_labels` did: how many labels it kept, and each refused one."""

    accepted: int = 0
    #: ``{"row": n, "prediction_id": id, "reason": text}`` (row: the label's position, from 1
    #: in a file's data rows or from 0 in an API list), in the order given
    rejected: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "rejected": self.rejected}


def check_labels(records: PredictionRecordRepository, project_id: str, target: ColumnSpec,
                 labels: list[tuple[object, object, object]]
                 ) -> tuple[list[tuple[object, str, object]], list[dict]]:
    """Sort ``labels`` (``(row, prediction_id, actual)``) into the good ones, with their
    values read by the target's type, and the refused ones with their reasons; writes
    nothing."""
    ids = [pid for _, pid, _ in labels if isinstance(pid, str) and pid]
    known = records.get_many(ids)
    values, reasons = label_values([actual for _, _, actual in labels], target.type)
    good: list[tuple[object, str, object]] = []
    rejected: list[dict] = []
    first_row: dict[str, object] = {}
    for position, (row, pid, _) in enumerate(labels):
        reason = None
        if not isinstance(pid, str) or not pid.strip():
            reason = "prediction_id is missing (it must be the id a prediction answered)"
        elif pid in first_row:
            reason = f"prediction_id repeats row {first_row[pid]} of this feedback"
        elif pid not in known:
            reason = ("prediction_id is unknown: no recorded prediction has it (it was not "
                      "sampled, or retention deleted it)")
        elif known[pid]["project_id"] != project_id:
            reason = "prediction_id belongs to another project's prediction"
        elif known[pid].get("labeled_at") is not None:
            reason = "prediction_id is labeled already"
        elif position in reasons:
            reason = f"actual: {reasons[position]} (the target {target.name} is {target.type})"
        elif values[position] is None:
            reason = f"actual is missing (give the true value of {target.name})"
        if isinstance(pid, str) and pid and pid not in first_row:
            first_row[pid] = row
        if reason:
            rejected.append({"row": row,  # a sent id is echoed, within reason
                             "prediction_id": pid[:200] if isinstance(pid, str) else None,
                             "reason": reason})
        else:
            good.append((row, pid, values[position]))
    return good, rejected


def join_labels(records: PredictionRecordRepository, project_id: str, target: ColumnSpec,
                labels: list[tuple[object, object, object]]) -> JoinResult:
    """Check ``labels`` (:func:`check_labels`) and set each good one on its record; a record
    labeled meanwhile by someone else is refused then, never overwritten."""
    good, rejected = check_labels(records, project_id, target, labels)
    result = JoinResult(rejected=rejected)
    for row, pid, actual in good:
        if records.label(project_id, pid, actual):
            result.accepted += 1
        else:
            result.rejected.append({"row": row, "prediction_id": pid,
                                    "reason": "prediction_id is labeled already"})
    result.rejected.sort(key=lambda r: (isinstance(r["row"], str), r["row"]))
    return result


def frame_labels(frame: pd.DataFrame, target: str, *, first_row: int = 1
                 ) -> list[tuple[int, object, object]]:
    """The labels of a feedback file's typed frame (``prediction_id`` and ``target``
    columns), numbered by data row from ``first_row``."""
    ids = frame[ID_COLUMN].tolist()
    actual = [_plain(v, "") for v in frame[target].tolist()]
    return [(first_row + i, pid if isinstance(pid, str) else None, value)
            for i, (pid, value) in enumerate(zip(ids, actual, strict=True))]


def _cell(value) -> str:
    """A JSON value as the text a CSV cell would hold (missing: empty)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def labeled_frame(rows: list[dict], schema: BatchSchema, columns: list[str]) -> pd.DataFrame:
    """Labeled prediction records (``{column: value}``, the target holding the actual value)
    as a typed frame of ``columns``, read by the rules of a batch file's cells
    (:func:`project_library.values.parse_column`), so it joins the training files' frame.
    A value that does not parse, or a column a record lacks, is missing."""
    typed: dict[str, pd.Series] = {}
    for name in columns:
        spec = schema.column(name)
        texts = pd.Series([_cell(row.get(name)) for row in rows], dtype=object)
        values, _ = parse_column(texts, spec.type if spec else "category")
        typed[name] = values
    return pd.DataFrame(typed)


def feedback_rows(records: PredictionRecordRepository, project_id: str, target: str,
                  limit: int = 1_000_000) -> list[dict]:
    """The project's labeled records as training rows: their inputs, and the target set to
    the actual value (the newest ``limit`` at most)."""
    docs = records.find(project_id, labeled=True, newest_first=True, limit=limit)
    return [{**(doc.get("inputs") or {}), target: doc["actual"]} for doc in reversed(docs)]
