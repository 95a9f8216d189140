"""Segment definitions and consent purposes from ``conf/segments.yaml``.

Conditions are Spark SQL over the profile; whether they compile is checked when they are
evaluated (that needs a session and the profile's schema), see
:func:`cdplake.segments.evaluate_segments`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml

SEGMENTS_FILE = "segments.yaml"
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Purpose:
    """Why a segment is published, and which boolean profile columns must all be true for it.

    Attributes:
        name: e.g. ``marketing_email``.
        requires: profile columns such as ``can_email_marketing``; empty means no consent needed.
        description: for people.
    """

    name: str
    requires: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class SegmentDefinition:
    """One versioned segment.

    Attributes:
        id: stable identifier (``recent_purchasers``).
        version: bumped whenever the meaning changes; stored on each membership row.
        description: for people.
        purpose: a key of :attr:`SegmentsConfig.purposes`.
        condition: Spark SQL boolean expression over the profile columns.
        features: profile columns recorded as ``qualified_values``; empty means the
            columns the condition mentions.
    """

    id: str
    version: int
    description: str
    purpose: str
    condition: str
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentRules:
    """Where marketing email needs a recorded opt-in, and how countries are spelled.

    Attributes:
        opt_in_required_countries: ISO 3166 codes where marketing email needs an opt-in
            (GDPR/PECR-style regimes).
        opt_in_required_elsewhere: whether a listed-nowhere country needs one too.
        opt_in_required_when_unknown: whether a customer without a country needs one.
        country_aliases: spelling (upper case) -> ISO code, e.g. ``UK: GB``.

    The defaults need an opt-in everywhere, the strictest reading.
    """

    opt_in_required_countries: tuple[str, ...] = ()
    opt_in_required_elsewhere: bool = True
    opt_in_required_when_unknown: bool = True
    country_aliases: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SegmentsConfig:
    """All purposes and segment definitions, validated."""

    purposes: dict[str, Purpose]
    segments: tuple[SegmentDefinition, ...]
    consent: ConsentRules = ConsentRules()

    def purpose_of(self, segment: SegmentDefinition) -> Purpose:
        """The purpose a segment is published for."""
        return self.purposes[segment.purpose]


def _str_list(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) and _COLUMN.match(v) for v in raw):
        raise ConfigError(f"{where} must be a list of column names, got {raw!r}")
    return tuple(raw)


def _purposes(raw: Any, where: str) -> dict[str, Purpose]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: purposes must be a non-empty mapping of name -> {{requires: [...]}}")
    out: dict[str, Purpose] = {}
    for name, body in raw.items():
        body = body or {}
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: purpose {name!r} must be a mapping")
        unknown = set(body) - {"requires", "description"}
        if unknown:
            raise ConfigError(f"{where}: purpose {name!r} has unknown key(s) {sorted(unknown)}")
        out[str(name)] = Purpose(
            name=str(name),
            requires=_str_list(body.get("requires"), f"{where}: purpose {name!r} requires"),
            description=str(body.get("description", "")),
        )
    return out


def _segment(raw: Any, index: int, purposes: dict[str, Purpose], where: str) -> SegmentDefinition:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: segments[{index}] must be a mapping")
    sid = raw.get("id")
    label = f"{where}: segment {sid!r}" if sid else f"{where}: segments[{index}]"
    required = {"id", "version", "purpose", "condition"}
    known = required | {"description", "features"}
    missing = required - set(raw)
    if missing:
        raise ConfigError(f"{label} is missing {sorted(missing)}")
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{label} has unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")
    if not isinstance(sid, str) or not _ID.match(sid):
        raise ConfigError(f"{label}: id must be lower_snake_case")
    version = raw["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ConfigError(f"{label}: version must be a positive integer, got {version!r}")
    if raw["purpose"] not in purposes:
        raise ConfigError(f"{label}: unknown purpose {raw['purpose']!r}; known: {sorted(purposes)}")
    condition = raw["condition"]
    if not isinstance(condition, str) or not condition.strip():
        raise ConfigError(f"{label}: condition must be a non-empty SQL expression")
    return SegmentDefinition(
        id=sid,
        version=version,
        description=str(raw.get("description", "")),
        purpose=raw["purpose"],
        condition=condition.strip(),
        features=_str_list(raw.get("features"), f"{label}: features"),
    )


_ISO = re.compile(r"^[A-Z]{2}$")


def _consent(raw: Any, where: str) -> ConsentRules:
    if raw is None:
        return ConsentRules()
    known = set(ConsentRules.__dataclass_fields__)
    if not isinstance(raw, dict) or set(raw) - known:
        raise ConfigError(f"{where}: consent must be a mapping with some of {sorted(known)}")
    codes = raw.get("opt_in_required_countries") or []
    if not isinstance(codes, list) or not all(isinstance(c, str) and _ISO.match(c) for c in codes):
        raise ConfigError(f"{where}: consent.opt_in_required_countries must be ISO 3166 codes like GB")
    flags = {}
    for key in ("opt_in_required_elsewhere", "opt_in_required_when_unknown"):
        value = raw.get(key, True)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: consent.{key} must be true or false, got {value!r}")
        flags[key] = value
    aliases = raw.get("country_aliases") or {}
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and _ISO.match(v) for k, v in aliases.items()
    ):
        raise ConfigError(f"{where}: consent.country_aliases must map spellings to ISO codes")
    return ConsentRules(
        opt_in_required_countries=tuple(codes),
        country_aliases={k.strip().upper(): v for k, v in aliases.items()},
        **flags,
    )


def parse_segments_config(raw: dict[str, Any], where: str = SEGMENTS_FILE) -> SegmentsConfig:
    """Validate a parsed ``segments.yaml`` mapping.

    Raises:
        ConfigError: unknown keys, duplicate segment ids, unknown purposes, bad versions.
    """
    unknown = set(raw) - {"purposes", "segments", "consent"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected purposes, segments, consent")
    purposes = _purposes(raw.get("purposes"), where)
    seg_raw = raw.get("segments") or []
    if not isinstance(seg_raw, list):
        raise ConfigError(f"{where}: segments must be a list")
    segments = tuple(_segment(s, i, purposes, where) for i, s in enumerate(seg_raw))
    seen: set[str] = set()
    for seg in segments:
        if seg.id in seen:
            raise ConfigError(f"{where}: segment id {seg.id!r} is defined more than once")
        seen.add(seg.id)
    return SegmentsConfig(purposes=purposes, segments=segments, consent=_consent(raw.get("consent"), where))


def load_segments_config(conf_dir: str | Path) -> SegmentsConfig:
    """Load and validate ``<conf_dir>/segments.yaml``.

    Args:
        conf_dir: the ``conf/`` folder (``env.conf_dir``).

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = Path(conf_dir) / SEGMENTS_FILE
    return parse_segments_config(_read_yaml(path), where=str(path))
