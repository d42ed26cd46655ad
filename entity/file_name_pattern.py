"""File-name patterns, the one kind of regular expression users write, matched in linear time.

A project's ``filename_pattern`` runs against every uploaded file name. Python's ``re`` backtracks:
``^(a+)+$`` against ``'a' * 28 + '!'`` takes seconds and holds the web process meanwhile. RE2
(google-re2) matches in time linear in the name, so a user pattern costs at most its size times
the name's length. The constructs that need backtracking (backreferences, lookaround, atomic
groups, possessive quantifiers) do not exist in RE2: a pattern using one is refused with a
message naming it.

RE2 reads a few spellings differently from Python instead of refusing them; those are refused
too, so that a pattern never silently means something else: a repetition count above
:data:`MAX_REPEAT` (RE2 reads ``a{99999999999}`` as literal text) and ``{,n}`` (RE2 reads it
literally, Python as ``{0,n}``). Python's ``\\Z`` is RE2's ``\\z`` and is translated.
"""

from __future__ import annotations

import functools
import re

import re2

#: the largest repetition count RE2 accepts
MAX_REPEAT = 1000
#: RE2's memory budget per compiled pattern: a larger program is refused as too costly
MAX_MEMORY = 1 << 20

_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")
#: what RE2 names in its error -> the sentence a user reads
_UNSUPPORTED = {
    "(?=": "Lookahead (?=...) is not supported.",
    "(?!": "Negative lookahead (?!...) is not supported.",
    "(?<=": "Lookbehind (?<=...) is not supported.",
    "(?<!": "Negative lookbehind (?<!...) is not supported.",
    "(?>": "Atomic groups (?>...) are not supported.",
    "(?P=": "Named backreferences (?P=name) are not supported.",
    "(?#": "Comments (?#...) are not supported.",
    "(?x": "Verbose mode (?x) is not supported.",
    "(?a": "The ASCII flag (?a) is not supported (\\d, \\w and \\s are ASCII already).",
    "(?u": "The Unicode flag (?u) is not supported; use \\pL or \\p{Greek} for letters.",
    "(?L": "The locale flag (?L) is not supported.",
}


class PatternRefused(ValueError):
    """A pattern that cannot be used; ``str()`` is a message for the person who wrote it."""


def _for_re2(pattern: str) -> str:
    """Refuse the spellings RE2 would read differently from Python; return the pattern as RE2
    should see it (``\\Z`` -> ``\\z``). Raises PatternRefused."""
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if pattern.startswith("\\Q", i):  # literal text up to \E
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            escape = pattern[i:i + 2]
            out.append("\\z" if escape == "\\Z" and not in_class else escape)
            i += 2
            continue
        if in_class:
            if ch == "[" and pattern.startswith("[:", i) and ":]" in pattern[i + 2:]:
                end = pattern.index(":]", i + 2) + 2  # [[:alpha:]]
                out.append(pattern[i:end])
                i = end
                continue
            in_class = ch != "]"
        elif ch == "[":
            start = i + 1
            start += pattern.startswith("^", start)
            start += pattern.startswith("]", start)  # a leading ] is a literal
            out.append(pattern[i:start])
            i, in_class = start, True
            continue
        elif ch == "{" and (repeat := _REPEAT.match(pattern, i)):
            low, comma, high = repeat.groups()
            if not low and comma and high:
                raise PatternRefused(f"Write {{0,{high}}} instead of {{,{high}}}.")
            if any(part and int(part) > MAX_REPEAT for part in (low, high)):
                raise PatternRefused(f"A repetition count may be at most {MAX_REPEAT}; "
                                     f"{repeat.group()} is too large.")
        out.append(ch)
        i += 1
    return "".join(out)


def _reason(error: re2.error, pattern: str) -> str:
    detail = error.args[0] if error.args else ""
    detail = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else str(detail)
    problem, _, operator = detail.partition(": ")
    if "too large" in problem:
        return ("The pattern is too large to match efficiently; make it simpler "
                "(fewer or smaller repetitions).")
    if problem == "invalid perl operator":
        for opening, sentence in _UNSUPPORTED.items():
            # RE2 names (?P= as just "(?P"
            if operator.startswith(opening) or (opening.startswith(operator)
                                                and opening in pattern):
                return sentence
    if problem == "invalid escape sequence" and operator[1:2].isdigit():
        return f"Backreferences ({operator}) are not supported."
    if problem == "bad repetition operator" and operator.endswith("+"):
        return f"Possessive quantifiers ({operator}) are not supported."
    return f"Not a valid regular expression: {detail}."


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.log_errors = False
    return options


@functools.lru_cache(maxsize=128)
def compile_file_name_pattern(pattern: str):
    """The compiled RE2 program of ``pattern``; raises PatternRefused with the reason."""
    translated = _for_re2(pattern)
    try:
        return re2.compile(translated, _options())
    except re2.error as exc:
        raise PatternRefused(_reason(exc, translated)) from None


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be used, or None when it can."""
    try:
        compile_file_name_pattern(pattern)
    except PatternRefused as exc:
        return str(exc)
    return None


def matches_whole(pattern: str, name: str) -> bool:
    """True when all of ``name`` matches ``pattern``, in time linear in ``len(name)``.

    Raises PatternRefused for a pattern that cannot be used."""
    return compile_file_name_pattern(pattern).fullmatch(name) is not None
