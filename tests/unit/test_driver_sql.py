"""The Spark dialect's Jaro-Winkler, in Python for DuckDB on the driver (no Spark here)."""

from __future__ import annotations

import duckdb
import pytest

from cdplake.identity.driver_sql import FUNCTION, jaro_winkler, register, spark_identical


@pytest.mark.parametrize(
    ("left", "right", "want"),
    [
        # 5 matches (C a r o e), 3 out of order -> 1.5 transpositions (kept as a fraction):
        # Jaro (5/6 + 5/7 + 3.5/5) / 3 = 0.7492, then 2 common leading letters -> 0.7994,
        # below a 0.80 level (DuckDB's built-in gives 0.826)
        ("Carole", "Cameron", (5 / 6 + 5 / 7 + 3.5 / 5) / 3 * 0.8 + 0.2),
        # the textbook pair: 6 matches, 1 transposition, prefix 3
        ("MARTHA", "MARHTA", (1 + 1 + 5 / 6) / 3 * 0.7 + 0.3),
        ("Ann", "Anne", (1 + 3 / 4 + 1) / 3 * 0.7 + 0.3),
        # window 2: only M matches (Maddox's a is 4 places from Micheal's) -> Jaro
        # (1/7 + 1/6 + 1) / 3 = 0.44 < 0.7: no prefix boost
        ("Micheal", "Maddox", (1 / 7 + 1 / 6 + 1) / 3),
        ("ab", "ba", 0.0),  # window 0: nothing matches
        ("", "a", 0.0),
        ("Zoë", "Zoë", 1.0),
    ],
)
def test_jaro_winkler_arithmetic(left, right, want):
    assert jaro_winkler(left, right) == pytest.approx(want, abs=1e-12)
    assert jaro_winkler(right, left) == pytest.approx(want, abs=1e-12)


def test_settings_call_the_registered_function_in_duckdb():
    settings = {
        "comparisons": [
            {
                "comparison_levels": [
                    {"sql_condition": '"first_name_l" IS NULL'},
                    {"sql_condition": 'jaro_winkler_similarity("first_name_l", "first_name_r") >= 0.8'},
                ]
            }
        ]
    }
    out = spark_identical(settings)
    condition = out["comparisons"][0]["comparison_levels"][1]["sql_condition"]
    assert condition == f'{FUNCTION}("first_name_l", "first_name_r") >= 0.8'
    assert settings["comparisons"][0]["comparison_levels"][1]["sql_condition"].startswith(
        "jaro_winkler_similarity"
    )
    con = duckdb.connect()
    register(con)
    got = con.execute(
        f"SELECT {FUNCTION}(a, b) FROM (VALUES ('Carole', 'Cameron'), (NULL, 'x')) t(a, b)"
    ).fetchall()
    assert got == [(pytest.approx(0.79936507936, abs=1e-9),), (None,)]
