"""File-name patterns run on RE2: linear-time matching, and a clear refusal for what RE2 does not
support or would read differently from Python."""

from __future__ import annotations

import pytest

from entity.file_name_pattern import (
    MAX_REPEAT,
    PatternRefused,
    compile_file_name_pattern,
    matches_whole,
    pattern_problem,
)


def test_the_pathological_pattern_matches_in_linear_time():
    # Python's re needs about 2**n steps here: n = 28 took 9 s, n = 60 would take centuries.
    assert matches_whole(r"^(a+)+$", "a" * 60) is True
    assert matches_whole(r"^(a+)+$", "a" * 60 + "!") is False
    assert matches_whole(r"^(a|aa)+$", "a" * 5000 + "b") is False


@pytest.mark.parametrize("pattern, name, expected", [
    (r"^wafer_\d{8}_\d{6}\.csv$", "wafer_08012020_120000.csv", True),
    (r"^wafer_\d{8}_\d{6}\.csv$", "wafer_0801202_120000.csv", False),
    (r"wafer_\d+\.csv", "wafer_1.csv", True),  # matched whole, as before: no anchors needed
    (r"wafer_\d+\.csv", "my_wafer_1.csv", False),
    (r"^data\ \(\d{1}\)\.v\d{1}\.csv$", "data (1).v2.csv", True),  # re.escape's spelling
    (r"^(?i)DATA_\d+\.CSV$", "data_1.csv", True),
    (r"^(?P<day>\d{8})\.csv$", "20260101.csv", True),
    (r"^\w+\.csv\Z", "abc.csv", True),  # Python's \Z is RE2's \z
    (r"^[[:alpha:]]+\.csv$", "abc.csv", True),
    (r"^\pL+\.csv$", "données.csv", True),
    (r"^\QA{99999}\E$", "A{99999}", True),  # quoted text stays literal
    (r"^a{0,3}$", "aaa", True),
])
def test_supported_syntax(pattern, name, expected):
    assert pattern_problem(pattern) is None
    assert matches_whole(pattern, name) is expected


@pytest.mark.parametrize("pattern, reason", [
    ("a{99999999999}", f"at most {MAX_REPEAT}; {{99999999999}} is too large"),
    ("a{1001}", "{1001} is too large"),
    ("a{2,5000}", "{2,5000} is too large"),
    ("a{,5}", "Write {0,5} instead of {,5}"),
    (r"(a)\1", r"Backreferences (\1) are not supported"),
    (r"(?P<x>a)(?P=x)", "Named backreferences (?P=name) are not supported"),
    (r"a(?=b)", "Lookahead (?=...) is not supported"),
    (r"a(?!b)", "Negative lookahead (?!...) is not supported"),
    (r"(?<=a)b", "Lookbehind (?<=...) is not supported"),
    (r"(?<!a)b", "Negative lookbehind (?<!...) is not supported"),
    (r"(?>a+)b", "Atomic groups (?>...) are not supported"),
    (r"a++", "Possessive quantifiers (++) are not supported"),
    (r"(?x) a b", "Verbose mode (?x) is not supported"),
    (r"\pL{1000}", "too large to match efficiently"),  # beyond RE2's memory budget
    (r"wafer_(\d+", "Not a valid regular expression: missing )"),
    ("[", "Not a valid regular expression: missing ]"),
])
def test_refused_patterns_name_the_reason(pattern, reason):
    problem = pattern_problem(pattern)
    assert problem is not None and reason in problem, problem
    with pytest.raises(PatternRefused):
        compile_file_name_pattern(pattern)


@pytest.mark.parametrize("pattern", [r"\{99999999999\}", r"[{]99999999999}", r"a\{,5}"])
def test_braces_that_are_literal_text_are_not_mistaken_for_repetitions(pattern):
    assert pattern_problem(pattern) is None
