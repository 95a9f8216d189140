"""Splink's DuckDB dialect made to compare strings exactly as its Spark dialect does.

Training and incremental scoring run Splink's DuckDB backend on the driver; full scoring runs
its Spark backend. The two dialects call different Jaro-Winkler implementations: Spark calls
the ``jaro_winkler`` UDF of Splink's similarity jar, DuckDB its built-in
``jaro_winkler_similarity``, and they disagree on some pairs (the jar halves the count of
transposed characters without rounding and boosts a common prefix only when the Jaro score
is at least 0.7). "Carole" and "Cameron" score 0.7994 on Spark and 0.8260 in DuckDB: on
either side of a 0.80 level, so the same pair would land in different comparison levels.

:func:`spark_identical` rewrites a DuckDB settings dict to call :func:`jaro_winkler`, which
reproduces the jar's arithmetic (checked against the UDF on every pair of a test corpus), and
:func:`register` makes that function known to a DuckDB connection. Levenshtein and
Damerau-Levenshtein agree between the dialects and are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

FUNCTION = "cdplake_jaro_winkler"
_DUCKDB_JARO_WINKLER = re.compile(r"\bjaro_winkler_similarity\s*\(", re.IGNORECASE)
_PREFIX_SCALE = 0.1
_MAX_PREFIX = 4
_BOOST_THRESHOLD = 0.7


@lru_cache(maxsize=1 << 18)  # names repeat: the same pair is compared many times
def jaro_winkler(left: str, right: str) -> float:
    """Jaro-Winkler similarity with the arithmetic of Splink's Spark UDF.

    Characters match within ``max(len) // 2 - 1`` positions; transpositions are the matched
    characters out of order, halved (a fraction is kept); the Winkler boost of 0.1 per
    common leading character (at most four) applies only when the Jaro score is at least 0.7.
    Characters are Python code points (the UDF counts UTF-16 units: the two differ only
    outside the Basic Multilingual Plane, on emoji and the like).
    """
    if left == right:
        return 1.0
    n_left, n_right = len(left), len(right)
    if not n_left or not n_right:
        return 0.0
    window = max(max(n_left, n_right) // 2 - 1, 0)
    left_hit = [False] * n_left
    right_hit = [False] * n_right
    matches = 0
    for i, char in enumerate(left):
        for j in range(max(0, i - window), min(i + window + 1, n_right)):
            if not right_hit[j] and right[j] == char:
                left_hit[i] = right_hit[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    in_left = (c for c, hit in zip(left, left_hit, strict=True) if hit)
    in_right = (c for c, hit in zip(right, right_hit, strict=True) if hit)
    transpositions = sum(a != b for a, b in zip(in_left, in_right, strict=True)) / 2
    jaro = (matches / n_left + matches / n_right + (matches - transpositions) / matches) / 3
    if jaro < _BOOST_THRESHOLD:
        return jaro
    prefix = 0
    for a, b in zip(left[:_MAX_PREFIX], right[:_MAX_PREFIX], strict=False):
        if a != b:
            break
        prefix += 1
    return jaro + prefix * _PREFIX_SCALE * (1 - jaro)


def spark_identical(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of DuckDB-dialect Splink ``settings`` whose levels call :func:`jaro_winkler`."""
    out = json.loads(json.dumps(dict(settings)))
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = _DUCKDB_JARO_WINKLER.sub(f"{FUNCTION}(", level["sql_condition"])
    return out


def register(con: Any) -> None:
    """Make :func:`jaro_winkler` callable as ``cdplake_jaro_winkler`` on a DuckDB connection."""
    from duckdb.sqltypes import DOUBLE, VARCHAR

    con.create_function(FUNCTION, jaro_winkler, [VARCHAR, VARCHAR], DOUBLE, side_effects=False)
