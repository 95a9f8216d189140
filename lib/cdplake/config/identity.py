"""Identity settings from ``conf/identity.yaml``: never-link rules, identifier caps, graph limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml

IDENTITY_FILE = "identity.yaml"


@dataclass(frozen=True)
class NeverLinkRules:
    """Identifier values that must never join two records into one customer.

    Attributes:
        placeholder_emails: exact emails (lower-case) people type instead of their own.
        placeholder_email_patterns: Java regular expressions matched against the email.
        blocked_phones: shared or store phone numbers in E.164.
        junk_values: values of any type that mean "nothing" (``null``, ``undefined``...),
            compared lower-case.
        min_length: values shorter than this never link, whatever their type.
    """

    placeholder_emails: tuple[str, ...] = ()
    placeholder_email_patterns: tuple[str, ...] = ()
    blocked_phones: tuple[str, ...] = ()
    junk_values: tuple[str, ...] = ()
    min_length: int = 1


@dataclass(frozen=True)
class GraphSettings:
    """Limits of the connected-components loop.

    Attributes:
        max_iterations: rounds of label propagation before giving up with an error.
        checkpoint_every: rounds between lineage cuts (``localCheckpoint``).
    """

    max_iterations: int = 40
    checkpoint_every: int = 4


@dataclass(frozen=True)
class IncrementalSettings:
    """When an incremental identity run re-resolves only the records a change can move.

    Attributes:
        max_scope_fraction: above this share of all records in scope, a full run is cheaper
            and is done instead.
        max_rounds: rounds of growing the scope before falling back to a full run.
        min_records: lakes with fewer identity records than this run in full: below it the
            fixed cost of the scope search and the MERGEs exceeds a full run's (BENCHMARKS.md).
    """

    max_scope_fraction: float = 0.5
    max_rounds: int = 10
    min_records: int = 0


# Every identifier type the extraction produces (cdplake.identity.extract), strongest first:
# the default merge priority when ``limits.priority`` does not list them all.
IDENTIFIER_TYPES = ("crm_contact_id", "user_id", "email", "phone", "order_id", "anonymous_id")


@dataclass(frozen=True)
class IdentifierLimits:
    """Caps on how many identifiers of a type one customer may hold, and the merge priority.

    Attributes:
        priority: every identifier type, strongest first. When a component breaks a cap (or a
            reviewer's cannot-link decision) its records are re-clustered one type at a time
            in this order, and a merge that would break a limit is refused.
        max_per_customer: identifier type -> the most distinct values one customer may hold.
            Types not listed are uncapped.
    """

    priority: tuple[str, ...] = IDENTIFIER_TYPES
    max_per_customer: tuple[tuple[str, int], ...] = ()

    @property
    def caps(self) -> dict[str, int]:
        return dict(self.max_per_customer)


@dataclass(frozen=True)
class IdentityConfig:
    """Everything identity resolution reads from configuration."""

    never_link: NeverLinkRules = NeverLinkRules()
    graph: GraphSettings = GraphSettings()
    limits: IdentifierLimits = IdentifierLimits()
    # Join components with the scored pairs of identity/probabilistic_edges at or above
    # conf/linkage.yaml's threshold_match_probability (when that table exists).
    use_probabilistic_edges: bool = True
    # In a group of three or more components joined by probabilistic links, a link whose
    # removal would split the group (a bridge) and whose best scored pair is below this
    # probability is cut (0 turns the cut off).
    weak_bridge_probability: float = 0.99
    incremental: IncrementalSettings = IncrementalSettings()


def _str_tuple(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(f"{where} must be a list of strings")
    return tuple(raw)


def _check_keys(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")


def _positive_int(raw: Any, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{where} must be a positive integer, got {raw!r}")
    return raw


def parse_identity_config(raw: dict[str, Any], where: str = IDENTITY_FILE) -> IdentityConfig:
    """Validate a parsed ``identity.yaml`` mapping into an :class:`IdentityConfig`.

    Raises:
        ConfigError: unknown keys, wrong types, or a pattern that is not a valid regex.
    """
    _check_keys(
        raw,
        {
            "never_link",
            "graph",
            "limits",
            "use_probabilistic_edges",
            "weak_bridge_probability",
            "incremental",
        },
        where,
    )
    use_edges = raw.get("use_probabilistic_edges", True)
    if not isinstance(use_edges, bool):
        raise ConfigError(f"{where}: use_probabilistic_edges must be true or false, got {use_edges!r}")
    bridge = raw.get("weak_bridge_probability", 0.99)
    if isinstance(bridge, bool) or not isinstance(bridge, (int, float)) or not 0 <= bridge <= 1:
        raise ConfigError(f"{where}: weak_bridge_probability must be a number from 0 to 1, got {bridge!r}")
    nl = raw.get("never_link") or {}
    if not isinstance(nl, dict):
        raise ConfigError(f"{where}: never_link must be a mapping")
    _check_keys(
        nl,
        {"placeholder_emails", "placeholder_email_patterns", "blocked_phones", "junk_values", "min_length"},
        f"{where}: never_link",
    )
    patterns = _str_tuple(
        nl.get("placeholder_email_patterns"), f"{where}: never_link.placeholder_email_patterns"
    )
    for pattern in patterns:
        # Python's re accepts the subset of Java syntax used here; catching typos at load time
        # beats a Spark error in the middle of a run.
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"{where}: never_link pattern {pattern!r} is not a valid regex: {exc}"
            ) from None
    rules = NeverLinkRules(
        placeholder_emails=tuple(
            e.strip().lower()
            for e in _str_tuple(nl.get("placeholder_emails"), f"{where}: never_link.placeholder_emails")
        ),
        placeholder_email_patterns=patterns,
        blocked_phones=_str_tuple(nl.get("blocked_phones"), f"{where}: never_link.blocked_phones"),
        junk_values=tuple(
            v.strip().lower() for v in _str_tuple(nl.get("junk_values"), f"{where}: never_link.junk_values")
        ),
        min_length=_positive_int(nl.get("min_length", 1), f"{where}: never_link.min_length"),
    )
    gr = raw.get("graph") or {}
    if not isinstance(gr, dict):
        raise ConfigError(f"{where}: graph must be a mapping")
    _check_keys(gr, {"max_iterations", "checkpoint_every"}, f"{where}: graph")
    graph = GraphSettings(
        max_iterations=_positive_int(gr.get("max_iterations", 40), f"{where}: graph.max_iterations"),
        checkpoint_every=_positive_int(gr.get("checkpoint_every", 4), f"{where}: graph.checkpoint_every"),
    )
    inc = raw.get("incremental") or {}
    if not isinstance(inc, dict):
        raise ConfigError(f"{where}: incremental must be a mapping")
    _check_keys(inc, {"max_scope_fraction", "max_rounds", "min_records"}, f"{where}: incremental")
    min_records = inc.get("min_records", 0)
    if isinstance(min_records, bool) or not isinstance(min_records, int) or min_records < 0:
        raise ConfigError(
            f"{where}: incremental.min_records must be a whole number >= 0, got {min_records!r}"
        )
    fraction = inc.get("max_scope_fraction", 0.5)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ConfigError(
            f"{where}: incremental.max_scope_fraction must be a number from 0 to 1, got {fraction!r}"
        )
    return IdentityConfig(
        never_link=rules,
        graph=graph,
        limits=_parse_limits(raw.get("limits"), where),
        use_probabilistic_edges=use_edges,
        weak_bridge_probability=float(bridge),
        incremental=IncrementalSettings(
            max_scope_fraction=float(fraction),
            max_rounds=_positive_int(inc.get("max_rounds", 10), f"{where}: incremental.max_rounds"),
            min_records=min_records,
        ),
    )


def _parse_limits(raw: Any, where: str) -> IdentifierLimits:
    if raw is None:
        return IdentifierLimits()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: limits must be a mapping")
    _check_keys(raw, {"priority", "max_per_customer"}, f"{where}: limits")
    listed = _str_tuple(raw.get("priority"), f"{where}: limits.priority")
    for name in listed:
        if name not in IDENTIFIER_TYPES:
            raise ConfigError(
                f"{where}: limits.priority names unknown identifier type {name!r}; known: {list(IDENTIFIER_TYPES)}"
            )
    if len(set(listed)) != len(listed):
        raise ConfigError(f"{where}: limits.priority lists an identifier type twice: {list(listed)}")
    # Types left out keep their default order, after the listed ones.
    priority = listed + tuple(t for t in IDENTIFIER_TYPES if t not in listed)
    caps_raw = raw.get("max_per_customer") or {}
    if not isinstance(caps_raw, dict):
        raise ConfigError(f"{where}: limits.max_per_customer must be a mapping of identifier type to a count")
    caps = []
    for name, value in caps_raw.items():
        if name not in IDENTIFIER_TYPES:
            raise ConfigError(
                f"{where}: limits.max_per_customer names unknown identifier type {name!r}; "
                f"known: {list(IDENTIFIER_TYPES)}"
            )
        caps.append((name, _positive_int(value, f"{where}: limits.max_per_customer.{name}")))
    return IdentifierLimits(priority=priority, max_per_customer=tuple(sorted(caps)))


def load_identity_config(conf_dir: str | Path) -> IdentityConfig:
    """Load and validate ``<conf_dir>/identity.yaml``.

    Args:
        conf_dir: the ``conf/`` folder (``env.conf_dir``).

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = Path(conf_dir) / IDENTITY_FILE
    return parse_identity_config(_read_yaml(path), where=str(path))
