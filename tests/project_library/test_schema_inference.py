"""Guessing a schema from a sample CSV."""

from __future__ import annotations

import re

import pytest

from exception_layer import ValidationFailed
from project_library.schema_inference import (
    filename_pattern,
    infer_from_samples,
    infer_schema,
)

SAMPLE = "\n".join(
    [",customer_id,age,income,city,member,signup,churned"]
    + [f"{i},C{1000 + i},{20 + i % 50},{1000.5 + i * 3.25},{['Paris', 'Lyon', 'Nice'][i % 3]},"
       f"{'yes' if i % 2 else 'no'},2024-01-{1 + i % 28:02d},{['stay', 'leave'][i % 2]}"
       for i in range(40)]
) + "\n"


def test_infers_types_target_ignored_and_pattern():
    schema = infer_schema(SAMPLE.encode(), "customers_20240101_093000.csv")  # best proposal

    types = {c.name: c.type for c in schema.columns}
    assert types == {"Unnamed: 0": "integer", "customer_id": "category", "age": "integer",
                     "income": "float", "city": "category", "member": "boolean",
                     "signup": "date", "churned": "category"}
    assert schema.target == "churned"
    assert sorted(schema.ignored) == ["Unnamed: 0", "customer_id"]
    assert schema.filename_pattern == r"^customers_\d{8}_\d{6}\.csv$"
    assert re.fullmatch(schema.filename_pattern, "customers_20250302_101010.csv")
    assert not re.fullmatch(schema.filename_pattern, "customers_2025_101010.csv")


def test_unique_measurements_are_not_mistaken_for_identifiers():
    rows = "\n".join(f"{(i * 7919) % 1000 + i},{i % 2}" for i in range(30))
    schema = infer_schema(("amount,label\n" + rows + "\n").encode(), "x.csv")
    assert schema.ignored == []
    assert schema.column("amount").type == "integer"


def test_pattern_from_the_wafer_example():
    assert filename_pattern("wafer_08012020_120000.csv") == r"^wafer_\d{8}_\d{6}\.csv$"
    assert filename_pattern("data (1).v2.csv") == r"^data\ \(\d{1}\)\.v\d{1}\.csv$"


@pytest.mark.parametrize(("data", "words"), [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG image"),
    (b"Once upon a time there was a file\nthat was not a CSV at all\n", "no commas"),
    (b"1,2,3\n4,5,6\n", "no header"),
    ("name,city\nJos\u00e9,M\u00e1laga\n".encode("latin-1"), "not UTF-8"),
    (b"a;b;c\n1;2;3\n", "semicolons"),
    (b"a,b\n", "no data rows"),
])
def test_refuses_what_is_not_a_csv_sample(data, words):
    with pytest.raises(ValidationFailed) as caught:
        infer_schema(data, "sample.csv")
    assert words in caught.value.message


def test_the_target_is_never_defaulted_and_the_proposal_is_ranked():
    """Issue 26: the last column was taken as the target (wrong on 6 of 9 datasets). Here the
    last column is a measurement and the class sits in the middle."""
    rows = "\n".join(f"{i},{['rain', 'sun', 'fog'][i % 3]},{i % 2},{10 + i * 0.37:.2f},"
                     f"{(i * 13) % 7}" for i in range(40))
    inferred = infer_from_samples([(f"id,weather,flag,temp_max,wind\n{rows}\n".encode(),
                                    "w.csv")])
    assert inferred.schema.target is None
    columns = [p["column"] for p in inferred.target_proposals]
    assert columns[0] == "weather" and "id" not in columns
    assert inferred.target_proposals[0]["problem_type"] == "classification"
    assert any("name" in why for why in inferred.target_proposals[0]["reasons"])
    assert inferred.to_dict()["schema"]["target"] is None


def test_types_are_read_from_every_sample_file():
    """Issue 26: a column inferred as integer from one sample refused 2 of 4 training files
    over one value 999999.375; every value of every sample now decides."""
    first = "amount,label\n" + "\n".join(f"{i},{i % 2}" for i in range(30)) + "\n"
    second = "amount,label\n1,0\n999999.375,1\n"
    assert infer_from_samples([(first.encode(), "a.csv")]).schema.column("amount").type == \
        "integer"
    both = infer_from_samples([(first.encode(), "a.csv"), (second.encode(), "b.csv")])
    assert both.schema.column("amount").type == "float"


def test_samples_with_other_columns_are_refused_by_name():
    with pytest.raises(ValidationFailed) as caught:
        infer_from_samples([(b"a,b\n1,2\n", "one.csv"), (b"a,c\n1,2\n", "two.csv")])
    assert "two.csv" in caught.value.message and "lacks b" in caught.value.message
