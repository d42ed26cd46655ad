"""One rule for values: the same raw values through a batch CSV file and through real-time
JSON records get the same verdict (a value, missing, or refused), and the values that broke
training (issue 21, item 9) are refused in both, naming the column and the row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from batch_datasets import csv_bytes, make_project, write_batches

from entity.project import BatchSchema, ColumnSpec
from exception_layer import ValidationFailed
from integration.file_manager import TRAINING
from project_library.schema_validation import check_batch_file, check_upload
from project_library.serving import records_frame
from project_library.training import train_project

BIG = "1" * 400
# raw text -> verdict per column type: "ok" (a value), "missing" or "bad"
TABLE = {
    "1.5": ("ok", "bad", "bad", "ok", "bad"),
    " 2 ": ("ok", "ok", "bad", "ok", "bad"),
    "12.0": ("ok", "ok", "bad", "ok", "bad"),
    "1e3": ("ok", "bad", "bad", "ok", "bad"),
    "1_000": ("bad", "bad", "bad", "ok", "bad"),
    "0x10": ("bad", "bad", "bad", "ok", "bad"),
    "abc": ("bad", "bad", "bad", "ok", "bad"),
    "": ("missing",) * 5,
    "   ": ("missing",) * 5,
    "NA": ("missing",) * 5,
    "na": ("missing",) * 5,
    " N/A ": ("missing",) * 5,
    "nan": ("missing",) * 5,
    "NaN": ("missing",) * 5,
    "null": ("missing",) * 5,
    "None": ("missing",) * 5,
    "inf": ("bad", "bad", "bad", "ok", "bad"),
    "-inf": ("bad", "bad", "bad", "ok", "bad"),
    "Infinity": ("bad", "bad", "bad", "ok", "bad"),
    "1e308": ("bad", "bad", "bad", "ok", "bad"),
    BIG: ("bad", "bad", "bad", "ok", "bad"),
    "3e38": ("ok", "bad", "bad", "ok", "bad"),
    "99999999999999999999": ("ok", "bad", "bad", "ok", "bad"),
    "9223372036854775808": ("ok", "bad", "bad", "ok", "bad"),  # 2**63
    "-9223372036854775807": ("ok", "ok", "bad", "ok", "bad"),
    "true": ("bad", "bad", "ok", "ok", "bad"),
    "Yes": ("bad", "bad", "ok", "ok", "bad"),
    "0": ("ok", "ok", "ok", "ok", "bad"),
    "1.0": ("ok", "ok", "ok", "ok", "bad"),
    "2": ("ok", "ok", "bad", "ok", "bad"),
    "2024-01-02": ("bad", "bad", "bad", "ok", "ok"),
    " 2024-01-02T10:30:00 ": ("bad", "bad", "bad", "ok", "ok"),
}
TYPES = ("float", "integer", "boolean", "category", "date")
FILLER = {"float": "1", "integer": "1", "boolean": "yes", "category": "x",
          "date": "2024-01-03"}


def _schema(column_type: str) -> BatchSchema:
    return BatchSchema(filename_pattern=r"^b\d*\.csv$", target="y", columns=[
        ColumnSpec("v", column_type), ColumnSpec("y", "category")]).validate()


def _csv_verdict(raw: str, column_type: str) -> str:
    """The verdict of a batch file whose first row holds ``raw`` (a second row keeps the column
    from being empty in every row)."""
    data = pd.DataFrame({"v": [raw, FILLER[column_type]], "y": ["a", "b"]})
    checked = check_batch_file("b.csv", csv_bytes(data), _schema(column_type),
                               require_target=True)
    if not checked.report.ok:
        return "bad"
    return "missing" if pd.isna(checked.frame["v"].iloc[0]) else "ok"


def _json_verdict(value, column_type: str) -> str:
    """The verdict of the same two rows as real-time records (JSON values)."""
    try:
        frame = records_frame([{"v": value}, {"v": FILLER[column_type]}], _schema(column_type))
    except ValidationFailed as refused:
        assert list(refused.details["rows"]["0"]) == ["v"]  # the column is named
        return "bad"
    return "missing" if pd.isna(frame["v"].iloc[0]) else "ok"


@pytest.mark.parametrize("column_type", TYPES)
def test_the_same_raw_values_get_the_same_verdict_in_a_file_and_in_a_request(column_type):
    column = TYPES.index(column_type)
    expected = {raw: verdicts[column] for raw, verdicts in TABLE.items()}
    through_csv = {raw: _csv_verdict(raw, column_type) for raw in TABLE}
    through_json = {raw: _json_verdict(raw, column_type) for raw in TABLE}
    assert through_csv == expected
    assert through_json == expected


@pytest.mark.parametrize(("value", "verdicts"), [
    (None, ("missing",) * 5),
    (float("nan"), ("missing",) * 5),
    (1.5, ("ok", "bad", "bad", "ok", "bad")),
    (12, ("ok", "ok", "bad", "ok", "bad")),
    (12.0, ("ok", "ok", "bad", "ok", "bad")),
    (1, ("ok", "ok", "ok", "ok", "bad")),
    (float("inf"), ("bad", "bad", "bad", "ok", "bad")),
    (float("-inf"), ("bad", "bad", "bad", "ok", "bad")),
    (1e308, ("bad", "bad", "bad", "ok", "bad")),
    (int(BIG), ("bad", "bad", "bad", "ok", "bad")),
    (True, ("bad", "bad", "ok", "ok", "bad")),
    ({"a": 1}, ("bad",) * 5),
    ([1], ("bad",) * 5),
])
def test_json_values_that_are_not_text(value, verdicts):
    """JSON numbers and booleans are typed already; their verdicts match the text's."""
    assert tuple(_json_verdict(value, t) for t in TYPES) == verdicts


def test_na_is_missing_in_a_request_as_in_a_batch_file():
    schema = _schema("float")
    frame = records_frame([{"v": "NA"}, {"v": " n/a "}, {"v": "1.5"}, {"v": None}], schema)
    assert frame["v"].isna().tolist() == [True, True, False, True]
    assert frame["v"].iloc[2] == 1.5


@pytest.mark.parametrize("raw", ["inf", "-inf", "1e308", BIG])
def test_out_of_range_floats_are_refused_in_files_naming_column_and_row(raw):
    """Issue 21 item 9: these were accepted in batch files, then training failed."""
    data = pd.DataFrame({"v": ["1", raw, "2"], "y": ["a", "b", "a"]})
    checked = check_batch_file("b.csv", csv_bytes(data), _schema("float"), require_target=True)
    assert not checked.report.ok
    [reason] = checked.report.reasons
    assert reason.startswith("column 'v': 1 value is out of range in row 2 (e.g. '")
    assert reason.endswith("a float must be a finite number between -3.4e38 and 3.4e38")
    assert len(reason) < 200  # a 400-digit value is shortened in the reason
    with pytest.raises(ValidationFailed, match="out of range"):
        check_upload("b.csv", csv_bytes(data), _schema("float"), require_target=True,
                     is_complete=True)


@pytest.mark.parametrize("value", ["inf", "-inf", "1e308", BIG, float("inf"), float("-inf"),
                                   1e308, int(BIG)])
def test_out_of_range_floats_are_refused_in_requests_naming_record_and_column(value):
    records = [{"v": 1.0}, {"v": value}]
    with pytest.raises(ValidationFailed) as refused:
        records_frame(records, _schema("float"))
    assert list(refused.value.details["rows"]) == ["1"]
    reason = refused.value.details["rows"]["1"]["v"]
    assert "is out of range: a float must be a finite number" in reason and len(reason) < 200
    assert refused.value.message.startswith("Record 1, v: ")


def test_a_file_with_infinite_values_is_set_aside_and_training_goes_on(files, reporter):
    """Issue 21 item 9: training used to fail with "Every algorithm failed"."""
    generator = np.random.default_rng(0)
    x = generator.normal(size=60)
    frame = pd.DataFrame({"x": x, "target": (x > 0).astype("int64")})
    schema = BatchSchema(filename_pattern=r"^batch_\d{8}_\d{6}\.csv$", target="target",
                         columns=[ColumnSpec("x", "float"),
                                  ColumnSpec("target", "integer")]).validate()
    write_batches(files, frame, TRAINING, parts=1)
    broken = frame.head(12).astype({"x": object})
    broken.loc[3, "x"], broken.loc[5, "x"] = "inf", "1e308"
    files.upload_bytes(TRAINING + "batch_20240109_120000.csv", csv_bytes(broken))
    result = train_project(files, project=make_project(schema, "classification"),
                           execution_id="ex", version=1, reporter=reporter,
                           candidates=["LogisticRegression"])
    assert result["data_fingerprint"]["rows"] == 60
    [bad] = [v for v in result["validation"] if not v["ok"]]
    assert bad["reasons"] == ["column 'x': 2 values are out of range in rows 4, 6 (e.g. 'inf', "
                              "'1e308'); a float must be a finite number between -3.4e38 "
                              "and 3.4e38"]
    assert files.exists("archive/ex/bad/batch_20240109_120000.csv")
