"""Feature (trait) declarations, the settings of the built-in feature groups and the survivorship
rules of the golden attributes, from ``conf/features.yaml``.

Declared traits are compiled to Spark aggregations by :mod:`cdplake.features.traits`; their
SQL (``column``, ``filter``, ``expression``) is checked when compiled against a DataFrame,
which needs a session. Everything else is validated here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml

FEATURES_FILE = "features.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Trait sources prepared by cdplake.features.sources, each with its own time column.
TRAIT_SOURCES = ("orders", "events", "email_events", "email_messages", "sessions")
AGGREGATES = ("count", "count_distinct", "sum", "avg", "min", "max", "decayed_sum")
# Golden contact attributes of the profile, and the sources their values are observed in
# (cdplake.features.profile maps each source to its silver table and columns).
GOLDEN_ATTRIBUTES = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "postcode",
    "country",
    "loyalty_tier",
)
GOLDEN_SOURCES = ("crm", "events", "orders", "email_events")
SURVIVORSHIP_RULES = ("most_recent", "source_priority", "most_frequent")
#: In a ``source_priority`` list: every source the list does not name, as one group, newest first.
OTHER_SOURCES = "*"


@dataclass(frozen=True)
class Trait:
    """One declared per-customer feature.

    Either an aggregate over a source's rows in a window, or a SQL ``expression`` over
    earlier traits and built-in profile columns (computed after every aggregate).

    Attributes:
        name: output column (lower_snake_case).
        description: for people.
        source: one of :data:`TRAIT_SOURCES` (aggregates only).
        aggregate: one of :data:`AGGREGATES` (aggregates only).
        column: SQL expression over the source's columns that is aggregated; ``count``
            needs none.
        filter: SQL predicate over the source's columns; rows failing it are not aggregated.
        window_days: only rows in ``(as_of - window_days, as_of]``; ``None`` means all rows
            up to ``as_of``.
        half_life_days: ``decayed_sum`` only: a row ``half_life_days`` old weighs 1/2.
        expression: SQL over other columns of the profile (expression traits only).
    """

    name: str
    description: str
    source: str | None = None
    aggregate: str | None = None
    column: str | None = None
    filter: str | None = None
    window_days: int | None = None
    half_life_days: float | None = None
    expression: str | None = None

    @property
    def is_expression(self) -> bool:
        return self.expression is not None


@dataclass(frozen=True)
class EmailSettings:
    """How machine opens and bot clicks are told apart from people.

    Attributes:
        machine_open_seconds: an open within this many seconds of delivery is a machine's
            (privacy proxies prefetch images on delivery).
        machine_open_user_agents: regexes; an open whose user agent matches is a machine's.
        bot_click_seconds: a click within this many seconds of delivery is a link scanner's.
        bot_click_burst_urls: a message whose clicks hit at least this many distinct URLs ...
        bot_click_burst_seconds: ... all within this many seconds was clicked by a scanner.
        bot_click_user_agents: regexes; a click whose user agent matches is a bot's.
    """

    machine_open_seconds: int = 30
    machine_open_user_agents: tuple[str, ...] = ()
    bot_click_seconds: int = 10
    bot_click_burst_urls: int = 3
    bot_click_burst_seconds: int = 5
    bot_click_user_agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrowsingSettings:
    """Sessionisation, cart abandonment and category affinity.

    Attributes:
        session_gap_minutes: a new session starts after this much inactivity.
        cart_abandonment_hours: a session with a cart add is abandoned when no order follows
            within this many hours of its last cart add (and that time has passed by as_of).
        top_categories: how many categories ``top_categories`` holds.
        category_window_days: window of the interactions that count for category affinity.
        category_weights: interaction kind (``view``, ``cart_add``, ``purchase``) -> weight.
    """

    session_gap_minutes: int = 30
    cart_abandonment_hours: int = 24
    top_categories: int = 3
    category_window_days: int = 90
    category_weights: dict[str, float] = field(
        default_factory=lambda: {"view": 1.0, "cart_add": 3.0, "purchase": 5.0}
    )


@dataclass(frozen=True)
class RfmCell:
    """A named region of the R x F x M score cube; inclusive ``[low, high]`` per score."""

    name: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)


@dataclass(frozen=True)
class RfmSettings:
    """RFM windows, the window scores are ranked over, and the cells (first match wins).

    Attributes:
        windows: frequency/monetary are computed over each of these windows (days).
        score_window_days: the window whose frequency and monetary value are scored.
        cells: evaluated in order; a buyer matching none gets ``other_cell``.
        other_cell: the cell of a buyer matching no cell.
    """

    windows: tuple[int, ...] = (30, 90, 365)
    score_window_days: int = 365
    cells: tuple[RfmCell, ...] = ()
    other_cell: str = "other"


@dataclass(frozen=True)
class ClvSettings:
    """Parameters of the predicted lifetime value model (see :mod:`cdplake.features.clv`)."""

    horizon_days: int = 365
    min_tenure_days: int = 30
    prior_alive: float = 0.9


@dataclass(frozen=True)
class SurvivorshipRule:
    """How one golden attribute's value is chosen from the values observed for a customer.

    Attributes:
        rule: one of :data:`SURVIVORSHIP_RULES`: ``most_recent`` (the newest non-null value
            of any source), ``source_priority`` (the first of ``sources`` holding a non-null
            value wins, its newest value) or ``most_frequent`` (the value on the most
            records; ties to the one seen most recently, then the smallest).
        sources: ``source_priority`` only: :data:`GOLDEN_SOURCES` in order of preference;
            :data:`OTHER_SOURCES` (``*``) stands for every source not named, taken together
            newest first. Sources not listed are not used.
    """

    rule: str = "source_priority"
    sources: tuple[str, ...] = ("crm", OTHER_SOURCES)


@dataclass(frozen=True)
class GoldenSettings:
    """Survivorship rules of the golden attributes.

    The defaults are CRM first, then the newest value observed anywhere else.

    Attributes:
        default: the rule of every attribute ``attributes`` does not name.
        attributes: attribute (one of :data:`GOLDEN_ATTRIBUTES`) -> its own rule.
    """

    default: SurvivorshipRule = SurvivorshipRule()
    attributes: dict[str, SurvivorshipRule] = field(default_factory=dict)

    def rule_for(self, attribute: str) -> SurvivorshipRule:
        """The rule that chooses ``attribute``."""
        return self.attributes.get(attribute, self.default)


@dataclass(frozen=True)
class FeaturesConfig:
    """Settings of the built-in groups and the declared traits, in output order."""

    email: EmailSettings = EmailSettings()
    browsing: BrowsingSettings = BrowsingSettings()
    rfm: RfmSettings = RfmSettings()
    clv: ClvSettings = ClvSettings()
    traits: tuple[Trait, ...] = ()
    golden: GoldenSettings = GoldenSettings()


def _keys(raw: Any, known: set[str], where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")
    return raw


def _num(raw: Any, where: str, *, integer: bool = True, minimum: float = 0) -> Any:
    ok = isinstance(raw, int) if integer else isinstance(raw, (int, float))
    if isinstance(raw, bool) or not ok or raw < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{where} must be {kind} >= {minimum}, got {raw!r}")
    return raw


def _regexes(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{where} must be a list of regexes")
    for pattern in raw:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"{where}: {pattern!r} is not a valid regex: {exc}") from None
    return tuple(raw)


def _email(raw: Any, where: str) -> EmailSettings:
    body = _keys(raw, set(EmailSettings.__dataclass_fields__), where)
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key.endswith("user_agents"):
            values[key] = _regexes(value, f"{where}.{key}")
        else:
            values[key] = _num(value, f"{where}.{key}", minimum=1 if key.endswith("urls") else 0)
    return EmailSettings(**values)


def _browsing(raw: Any, where: str) -> BrowsingSettings:
    body = _keys(raw, set(BrowsingSettings.__dataclass_fields__), where)
    values: dict[str, Any] = {}
    for key, value in body.items():
        if key == "category_weights":
            weights = _keys(value, {"view", "cart_add", "purchase"}, f"{where}.{key}")
            values[key] = {k: float(_num(v, f"{where}.{key}.{k}", integer=False)) for k, v in weights.items()}
        else:
            values[key] = _num(value, f"{where}.{key}", minimum=1)
    return BrowsingSettings(**values)


def _score_range(raw: Any, where: str) -> tuple[int, int]:
    if raw is None:
        return (1, 5)
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw, raw]
    if (
        not isinstance(raw, list)
        or len(raw) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5 for v in raw)
        or raw[0] > raw[1]
    ):
        raise ConfigError(f"{where} must be a score 1-5 or a range [low, high] within 1-5, got {raw!r}")
    return (raw[0], raw[1])


def _rfm(raw: Any, where: str) -> RfmSettings:
    body = _keys(raw, {"windows", "score_window_days", "cells", "other_cell"}, where)
    windows = body.get("windows", [30, 90, 365])
    if not isinstance(windows, list) or not windows:
        raise ConfigError(f"{where}.windows must be a non-empty list of days")
    windows = tuple(_num(w, f"{where}.windows", minimum=1) for w in windows)
    score_window = _num(body.get("score_window_days", windows[-1]), f"{where}.score_window_days", minimum=1)
    if score_window not in windows:
        raise ConfigError(
            f"{where}.score_window_days ({score_window}) must be one of windows {list(windows)}"
        )
    cells = []
    for i, cell in enumerate(body.get("cells") or []):
        label = f"{where}.cells[{i}]"
        cell = _keys(cell, {"name", "r", "f", "m"}, label)
        name = cell.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(f"{label}: name must be lower_snake_case")
        cells.append(
            RfmCell(
                name=name,
                r=_score_range(cell.get("r"), f"{label}.r"),
                f=_score_range(cell.get("f"), f"{label}.f"),
                m=_score_range(cell.get("m"), f"{label}.m"),
            )
        )
    other = body.get("other_cell", "other")
    if not isinstance(other, str) or not _NAME.match(other):
        raise ConfigError(f"{where}.other_cell must be lower_snake_case")
    return RfmSettings(windows=windows, score_window_days=score_window, cells=tuple(cells), other_cell=other)


def _clv(raw: Any, where: str) -> ClvSettings:
    body = _keys(raw, set(ClvSettings.__dataclass_fields__), where)
    clv = ClvSettings(
        horizon_days=_num(body.get("horizon_days", 365), f"{where}.horizon_days", minimum=1),
        min_tenure_days=_num(body.get("min_tenure_days", 30), f"{where}.min_tenure_days", minimum=1),
        prior_alive=float(_num(body.get("prior_alive", 0.9), f"{where}.prior_alive", integer=False)),
    )
    if not 0 < clv.prior_alive < 1:
        raise ConfigError(f"{where}.prior_alive must be strictly between 0 and 1, got {clv.prior_alive}")
    return clv


def _survivorship_rule(raw: Any, where: str) -> SurvivorshipRule:
    if isinstance(raw, str):  # shorthand for a rule without sources: `phone: most_recent`
        raw = {"rule": raw}
    body = _keys(raw, {"rule", "sources"}, where)
    rule = body.get("rule")
    if rule not in SURVIVORSHIP_RULES:
        raise ConfigError(f"{where}.rule must be one of {list(SURVIVORSHIP_RULES)}, got {rule!r}")
    sources = body.get("sources")
    if rule != "source_priority":
        if sources is not None:
            raise ConfigError(f"{where}.sources applies to rule source_priority only")
        return SurvivorshipRule(rule=rule, sources=())
    known = (*GOLDEN_SOURCES, OTHER_SOURCES)
    if not isinstance(sources, list) or not sources:
        raise ConfigError(f"{where}.sources must be a non-empty list of sources (some of {list(known)})")
    for source in sources:
        if source not in known:
            raise ConfigError(f"{where}.sources: unknown source {source!r}; expected some of {list(known)}")
    repeated = sorted({s for s in sources if sources.count(s) > 1})
    if repeated:
        raise ConfigError(f"{where}.sources: {repeated} listed more than once")
    return SurvivorshipRule(rule=rule, sources=tuple(sources))


def _golden(raw: Any, where: str) -> GoldenSettings:
    body = _keys(raw, {"default", "attributes"}, where)
    default = GoldenSettings().default
    if body.get("default") is not None:
        default = _survivorship_rule(body["default"], f"{where}.default")
    attributes = _keys(body.get("attributes"), set(GOLDEN_ATTRIBUTES), f"{where}.attributes")
    rules = {a: _survivorship_rule(r, f"{where}.attributes.{a}") for a, r in attributes.items()}
    return GoldenSettings(default=default, attributes=rules)


def _sql(raw: Any, where: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{where} must be a non-empty SQL string")
    return raw.strip()


def _trait(raw: Any, index: int, where: str) -> Trait:
    known = {"name", "description", "source", "aggregate", "column", "filter", "window_days"}
    known |= {"half_life_days", "expression"}
    body = _keys(raw, known, f"{where}: traits[{index}]")
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: traits[{index}]: name must be lower_snake_case, got {name!r}")
    label = f"{where}: trait {name!r}"
    if not body.get("description"):
        raise ConfigError(f"{label} needs a description")
    expression = _sql(body.get("expression"), f"{label}.expression")
    if expression is not None:
        extra = set(body) - {"name", "description", "expression"}
        if extra:
            raise ConfigError(f"{label}: an expression trait takes no {sorted(extra)}")
        return Trait(name=name, description=str(body["description"]), expression=expression)
    source, aggregate = body.get("source"), body.get("aggregate")
    if source not in TRAIT_SOURCES:
        raise ConfigError(f"{label}: source must be one of {list(TRAIT_SOURCES)}, got {source!r}")
    if aggregate not in AGGREGATES:
        raise ConfigError(f"{label}: aggregate must be one of {list(AGGREGATES)}, got {aggregate!r}")
    column = _sql(body.get("column"), f"{label}.column")
    if column is None and aggregate != "count":
        raise ConfigError(f"{label}: aggregate {aggregate!r} needs a column")
    window = body.get("window_days")
    if window is not None:
        window = _num(window, f"{label}.window_days", minimum=1)
    half_life = body.get("half_life_days")
    if aggregate == "decayed_sum":
        if half_life is None:
            raise ConfigError(f"{label}: decayed_sum needs half_life_days")
        half_life = float(_num(half_life, f"{label}.half_life_days", integer=False, minimum=0.001))
    elif half_life is not None:
        raise ConfigError(f"{label}: half_life_days applies to decayed_sum only")
    return Trait(
        name=name,
        description=str(body["description"]),
        source=source,
        aggregate=aggregate,
        column=column,
        filter=_sql(body.get("filter"), f"{label}.filter"),
        window_days=window,
        half_life_days=half_life,
    )


def parse_features_config(raw: dict[str, Any], where: str = FEATURES_FILE) -> FeaturesConfig:
    """Validate a parsed ``features.yaml`` mapping.

    Raises:
        ConfigError: unknown keys, bad numbers or regexes, duplicate trait names, unknown
            survivorship rules, sources or attributes.
    """
    body = _keys(raw, {"settings", "traits", "golden"}, where)
    settings = _keys(body.get("settings"), {"email", "browsing", "rfm", "clv"}, f"{where}: settings")
    raw_traits = body.get("traits") or []
    if not isinstance(raw_traits, list):
        raise ConfigError(f"{where}: traits must be a list")
    traits = tuple(_trait(t, i, where) for i, t in enumerate(raw_traits))
    seen: set[str] = set()
    for trait in traits:
        if trait.name in seen:
            raise ConfigError(f"{where}: trait {trait.name!r} is declared more than once")
        seen.add(trait.name)
    return FeaturesConfig(
        email=_email(settings.get("email"), f"{where}: settings.email"),
        browsing=_browsing(settings.get("browsing"), f"{where}: settings.browsing"),
        rfm=_rfm(settings.get("rfm"), f"{where}: settings.rfm"),
        clv=_clv(settings.get("clv"), f"{where}: settings.clv"),
        traits=traits,
        golden=_golden(body.get("golden"), f"{where}: golden"),
    )


def load_features_config(conf_dir: str | Path) -> FeaturesConfig:
    """Load and validate ``<conf_dir>/features.yaml``.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = Path(conf_dir) / FEATURES_FILE
    return parse_features_config(_read_yaml(path), where=str(path))
