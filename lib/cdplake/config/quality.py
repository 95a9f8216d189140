"""Quality rules and expectation suites per silver table, from ``conf/quality/<table>.yaml``.

A file holds two lists: ``rules`` (row rules, compiled to Spark predicates by
:mod:`cdplake.quality.rules`) and ``expectations`` (dataset checks run with Great
Expectations by :mod:`cdplake.quality.expectations`). The table is the file's stem.

Rule shape::

    - id: orders_total_non_negative        # lower_snake_case, unique in the file
      description: a negative total is a till or feed error
      kind: range                          # not_null | range | allowed_values | regex | sql
      column: total                        # or columns: [a, b] (not for sql)
      min: 0                               # range: min and/or max, inclusive
      action: quarantine                   # warn | quarantine | fail

Kind parameters: ``range`` takes ``min`` and/or ``max`` (numbers, dates or timestamps),
``allowed_values`` takes ``values`` (a non-empty list), ``regex`` takes ``pattern`` (Java
regex, matched anywhere unless anchored), ``sql`` takes ``expr`` (a Spark SQL boolean,
true when the row is good). Whether columns exist and SQL compiles is checked when the
rules are applied to a frame (that needs its schema).

An optional ``event_time`` names the table's event-time column and the lateness its
watermark allows (``event_time: {column: event_ts, allowed_lateness: 2 days}``); see
:mod:`cdplake.silver.build` for what a late row does.

Expectation shape (every key but ``expectation`` and ``description`` is passed to the
Great Expectations class as a keyword argument)::

    - expectation: expect_column_values_to_not_be_null
      column: email
      mostly: 0.95
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml, default_conf_dir

QUALITY_DIR = "quality"
RULE_KINDS = ("not_null", "range", "allowed_values", "regex", "sql")
RULE_ACTIONS = ("warn", "quarantine", "fail")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXPECTATION = re.compile(r"^expect_[a-z0-9_]+$")
# The parameters each kind needs (all of them) or accepts (any of them, at least one).
_KIND_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "not_null": ((), ()),
    "range": ((), ("min", "max")),
    "allowed_values": (("values",), ()),
    "regex": (("pattern",), ()),
    "sql": (("expr",), ()),
}
_LATENESS = re.compile(r"^\s*(\d+)\s+(second|seconds|minute|minutes|hour|hours|day|days)\s*$")
_LATENESS_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RULE_COMMON = {"id", "description", "kind", "action", "column", "columns"}
_BOUND_TYPES = (int, float, dt.date, dt.datetime)


@dataclass(frozen=True)
class Rule:
    """One row rule.

    Attributes:
        id: stable identifier, reported in ``failed_rules`` and the rule counts.
        kind: one of :data:`RULE_KINDS`.
        action: ``warn`` (row kept, reported), ``quarantine`` (row split off) or ``fail``
            (the batch must stop).
        columns: the checked columns; for ``sql`` only informational (may be empty).
        description: why the rule exists, for people.
        min: inclusive lower bound (``range``).
        max: inclusive upper bound (``range``).
        values: the allowed values (``allowed_values``).
        pattern: a Java regular expression (``regex``).
        expr: a Spark SQL boolean expression, true for a good row (``sql``).
    """

    id: str
    kind: str
    action: str
    columns: tuple[str, ...] = ()
    description: str = ""
    min: Any = None
    max: Any = None
    values: tuple[Any, ...] = ()
    pattern: str | None = None
    expr: str | None = None


@dataclass(frozen=True)
class ExpectationConfig:
    """One Great Expectations expectation.

    Attributes:
        type: the expectation's snake_case name (``expect_column_values_to_be_unique``).
        kwargs: keyword arguments of the expectation class (``column``, ``mostly``...).
        description: for people.
    """

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    description: str = ""

    @property
    def column(self) -> str | None:
        """The checked column, when the expectation has one."""
        value = self.kwargs.get("column")
        return str(value) if value is not None else None


@dataclass(frozen=True)
class EventTime:
    """The event-time column of a table and how late a row may arrive before it counts as late.

    Attributes:
        column: the silver column holding when the event happened (UTC).
        allowed_lateness_seconds: the watermark trails the newest event time stored by
            this much; a row older than the watermark when it arrives is a late arrival.
    """

    column: str
    allowed_lateness_seconds: int


@dataclass(frozen=True)
class TableQuality:
    """Row rules and the expectation suite of one silver table.

    Attributes:
        table: the silver table (the file's stem).
        source: the file it was read from, for messages.
        rules: row rules in file order.
        expectations: the expectation suite in file order.
        event_time: when set, late arrivals are counted against an event-time watermark.
    """

    table: str
    source: str
    rules: tuple[Rule, ...] = ()
    expectations: tuple[ExpectationConfig, ...] = ()
    event_time: EventTime | None = None

    def rules_with_action(self, action: str) -> tuple[Rule, ...]:
        """The rules whose action is ``action``."""
        return tuple(r for r in self.rules if r.action == action)


def _columns(raw: dict[str, Any], kind: str, label: str) -> tuple[str, ...]:
    if "column" in raw and "columns" in raw:
        raise ConfigError(f"{label}: give either column or columns, not both")
    if "column" in raw:
        cols: Any = [raw["column"]]
    else:
        cols = raw.get("columns")
    if cols is None:
        if kind == "sql":
            return ()
        raise ConfigError(f"{label}: kind {kind} needs column: <name> or columns: [<name>, ...]")
    if (
        not isinstance(cols, list)
        or not cols
        or not all(isinstance(c, str) and _COLUMN.match(c) for c in cols)
    ):
        raise ConfigError(f"{label}: columns must be a non-empty list of column names, got {cols!r}")
    if len(set(cols)) != len(cols):
        raise ConfigError(f"{label}: columns {cols!r} repeat a column")
    return tuple(cols)


def _bound(value: Any, name: str, label: str) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, _BOUND_TYPES):
        raise ConfigError(
            f"{label}: {name} must be a number, a date (2015-01-01) or a timestamp "
            f"(2015-01-01T00:00:00Z), got {value!r}"
        )
    return value


def _comparable(low: Any, high: Any) -> bool:
    numbers = (int, float)
    if isinstance(low, numbers) and isinstance(high, numbers):
        return True
    # datetime is a subclass of date: compare only like with like (naive vs aware too).
    if type(low) is type(high) is dt.date:
        return True
    return (
        isinstance(low, dt.datetime)
        and isinstance(high, dt.datetime)
        and (low.tzinfo is None) == (high.tzinfo is None)
    )


def parse_rule(raw: Any, index: int, where: str) -> Rule:
    """Validate one rule mapping.

    Args:
        raw: the parsed YAML mapping.
        index: its position in ``rules`` (for messages when it has no id).
        where: the file, for messages.

    Raises:
        ConfigError: naming the file and the rule.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: rules[{index}] must be a mapping, got {type(raw).__name__}")
    rid = raw.get("id")
    label = f"{where}: rule {rid!r}" if rid else f"{where}: rules[{index}]"
    for key in ("id", "kind", "action"):
        if key not in raw:
            raise ConfigError(f"{label} is missing {key!r}")
    if not isinstance(rid, str) or not _ID.match(rid):
        raise ConfigError(f"{label}: id must be lower_snake_case")
    kind, action = raw["kind"], raw["action"]
    if kind not in RULE_KINDS:
        raise ConfigError(f"{label}: unknown kind {kind!r}; expected one of {RULE_KINDS}")
    if action not in RULE_ACTIONS:
        raise ConfigError(f"{label}: unknown action {action!r}; expected one of {RULE_ACTIONS}")
    required, any_of = _KIND_PARAMS[kind]
    known = _RULE_COMMON | set(required) | set(any_of)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(
            f"{label}: unknown key(s) {sorted(unknown)} for kind {kind}; expected some of {sorted(known)}"
        )
    missing = [k for k in required if raw.get(k) is None]
    if missing:
        raise ConfigError(f"{label}: kind {kind} needs {missing}")
    if any_of and all(raw.get(k) is None for k in any_of):
        raise ConfigError(f"{label}: kind {kind} needs at least one of {list(any_of)}")

    low, high = _bound(raw.get("min"), "min", label), _bound(raw.get("max"), "max", label)
    if low is not None and high is not None:
        if not _comparable(low, high):
            raise ConfigError(f"{label}: min {low!r} and max {high!r} are not of the same type")
        if low > high:
            raise ConfigError(f"{label}: min {low!r} is greater than max {high!r}")
    values: tuple[Any, ...] = ()
    if kind == "allowed_values":
        vals = raw["values"]
        if not isinstance(vals, list) or not vals or not all(isinstance(v, str | int | float) for v in vals):
            raise ConfigError(f"{label}: values must be a non-empty list of strings or numbers, got {vals!r}")
        values = tuple(vals)
    pattern = raw.get("pattern")
    if kind == "regex":
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{label}: pattern must be a non-empty string")
        try:
            # Python's dialect is close enough to Java's to catch typos before Spark runs.
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{label}: pattern {pattern!r} is not a valid regular expression: {exc}"
            ) from None
    expr = raw.get("expr")
    if kind == "sql" and (not isinstance(expr, str) or not expr.strip()):
        raise ConfigError(f"{label}: expr must be a non-empty SQL boolean expression")
    return Rule(
        id=rid,
        kind=kind,
        action=action,
        columns=_columns(raw, kind, label),
        description=str(raw.get("description") or "").strip(),
        min=low,
        max=high,
        values=values,
        pattern=pattern,
        expr=expr.strip() if isinstance(expr, str) else None,
    )


def parse_expectation(raw: Any, index: int, where: str) -> ExpectationConfig:
    """Validate one expectation mapping (the class and its arguments are checked by GX).

    Raises:
        ConfigError: naming the file and the expectation.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expectations[{index}] must be a mapping, got {type(raw).__name__}")
    name = raw.get("expectation")
    label = f"{where}: expectations[{index}] ({name})" if name else f"{where}: expectations[{index}]"
    if not isinstance(name, str) or not _EXPECTATION.match(name):
        raise ConfigError(
            f"{label}: expectation must name a Great Expectations type such as expect_column_values_to_be_unique"
        )
    column = raw.get("column")
    if column is not None and (not isinstance(column, str) or not _COLUMN.match(column)):
        raise ConfigError(f"{label}: column must be a column name, got {column!r}")
    mostly = raw.get("mostly")
    if mostly is not None and (
        isinstance(mostly, bool) or not isinstance(mostly, int | float) or not 0 <= mostly <= 1
    ):
        raise ConfigError(f"{label}: mostly must be a number between 0 and 1, got {mostly!r}")
    kwargs = {k: v for k, v in raw.items() if k not in ("expectation", "description")}
    return ExpectationConfig(
        type=name,
        kwargs=MappingProxyType(kwargs),
        description=str(raw.get("description") or "").strip(),
    )


def parse_quality_config(raw: Mapping[str, Any], table: str, where: str | None = None) -> TableQuality:
    """Validate a parsed ``conf/quality/<table>.yaml`` mapping.

    Args:
        raw: the parsed YAML.
        table: the silver table it describes.
        where: the file name for messages (defaults to ``quality/<table>.yaml``).

    Raises:
        ConfigError: unknown keys, duplicate rule ids, unknown kinds or actions, missing
            parameters; the message names the file and the rule.
    """
    where = where or f"{QUALITY_DIR}/{table}.yaml"
    unknown = set(raw) - {"description", "rules", "expectations", "event_time"}
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {sorted(unknown)}; expected description, event_time, rules, "
            "expectations"
        )
    rules_raw = raw.get("rules") or []
    exp_raw = raw.get("expectations") or []
    if not isinstance(rules_raw, list):
        raise ConfigError(f"{where}: rules must be a list")
    if not isinstance(exp_raw, list):
        raise ConfigError(f"{where}: expectations must be a list")
    rules = tuple(parse_rule(r, i, where) for i, r in enumerate(rules_raw))
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(f"{where}: rule id {rule.id!r} is defined more than once")
        seen.add(rule.id)
    expectations = tuple(parse_expectation(e, i, where) for i, e in enumerate(exp_raw))
    return TableQuality(
        table=table,
        source=where,
        rules=rules,
        expectations=expectations,
        event_time=parse_event_time(raw.get("event_time"), where),
    )


def parse_event_time(raw: Any, where: str) -> EventTime | None:
    """``event_time: {column: event_ts, allowed_lateness: 2 days}``, or None when absent.

    Raises:
        ConfigError: not a mapping with exactly ``column`` and ``allowed_lateness`` (an
            interval such as ``"6 hours"`` or ``"2 days"``).
    """
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"column", "allowed_lateness"}:
        raise ConfigError(f"{where}: event_time needs exactly column and allowed_lateness")
    match = _LATENESS.match(str(raw["allowed_lateness"]))
    if not match:
        raise ConfigError(
            f"{where}: event_time.allowed_lateness must look like '6 hours' or '2 days', "
            f"got {raw['allowed_lateness']!r}"
        )
    seconds = int(match.group(1)) * _LATENESS_UNITS[match.group(2).rstrip("s")]
    return EventTime(column=str(raw["column"]), allowed_lateness_seconds=seconds)


def load_quality_config(table: str, conf_dir: str | Path | None = None) -> TableQuality:
    """Load and validate ``conf/quality/<table>.yaml``.

    Args:
        table: the silver table (``events``, ``email_events``, ``crm_contacts``, ``orders``).
        conf_dir: the ``conf/`` folder; see :func:`cdplake.config.default_conf_dir`.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    conf = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    path = conf / QUALITY_DIR / f"{table}.yaml"
    return parse_quality_config(_read_yaml(path), table, where=str(path))


def load_quality_configs(conf_dir: str | Path | None = None) -> dict[str, TableQuality]:
    """Every ``conf/quality/*.yaml``, keyed by table, in name order.

    Raises:
        ConfigError: any file is invalid.
    """
    conf = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    return {p.stem: load_quality_config(p.stem, conf) for p in sorted((conf / QUALITY_DIR).glob("*.yaml"))}
