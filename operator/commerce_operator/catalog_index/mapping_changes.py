"""Whether a CatalogIndex's new settings and mappings can be applied to the live index in
place, or need the next index version (create, copy the documents, swap the alias).

Elasticsearch accepts in place: new fields (also new multi-fields), the few field parameters
it lets change (ignore_above, ignore_malformed, meta, search_analyzer), the mapping-level
dynamic, _meta, dynamic_templates, date_detection and numeric_detection, and dynamic index
settings. Everything else is incompatible: a changed field type or parameter, a removed field
(a mapping cannot drop a field; only a new index forgets it), and static settings such as
number_of_shards or analysis (changing analysis would need the index closed, and searches must
keep working).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

UPDATABLE_FIELD_PARAMETERS = frozenset(
    {"ignore_above", "ignore_malformed", "meta", "search_analyzer"}
)
UPDATABLE_MAPPING_KEYS = frozenset(
    {"dynamic", "_meta", "dynamic_templates", "date_detection", "numeric_detection"}
)
STATIC_SETTINGS = frozenset(
    {
        "number_of_shards",
        "number_of_routing_shards",
        "codec",
        "routing_partition_size",
        "soft_deletes.enabled",
        "store.type",
        "mode",
    }
)
STATIC_SETTING_PREFIXES = ("analysis.", "sort.", "similarity.")
# Parameters Elasticsearch answers with although the mapping did not set them (the completion
# mapper always writes its defaults), or that a spec may spell out although they are the
# default (which Elasticsearch then leaves out of its answer): either way the same mapping, so
# they are compared as if absent.
DEFAULT_FIELD_PARAMETERS: Mapping[str, Mapping[str, Any]] = {
    "*": {"index": True, "doc_values": True, "store": False},
    "text": {"norms": True},
    "completion": {
        "analyzer": "simple",
        "search_analyzer": "simple",
        "preserve_separators": True,
        "preserve_position_increments": True,
        "max_input_length": 50,
    },
}


class ChangeKind(StrEnum):
    NONE = "None"
    IN_PLACE = "InPlace"
    NEW_VERSION = "NewVersion"


@dataclass(frozen=True)
class IndexChange:
    kind: ChangeKind
    # Why a new version is needed; empty otherwise.
    reasons: tuple[str, ...] = ()
    # Dynamic settings to PUT on the live index (flat keys without "index.").
    settings_update: Mapping[str, str] = field(default_factory=dict)
    mapping_changed: bool = False


def flatten_settings(settings: Mapping[str, Any]) -> dict[str, str]:
    """Flat keys without the "index." prefix, values as strings: the spec may nest or not,
    and Elasticsearch answers nested with string values."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}{key}.", inner)
        else:
            flat[prefix[:-1]] = _scalar(value)

    walk("", settings)
    return {k.removeprefix("index."): v for k, v in flat.items()}


def plan_index_change(
    desired_settings: Mapping[str, Any],
    desired_mappings: Mapping[str, Any],
    observed_settings: Mapping[str, Any],
    observed_mappings: Mapping[str, Any],
) -> IndexChange:
    reasons: list[str] = []
    desired_flat = flatten_settings(desired_settings)
    observed_flat = flatten_settings(observed_settings)
    settings_update: dict[str, str] = {}
    for key, value in sorted(desired_flat.items()):
        if observed_flat.get(key) == value:
            continue
        if key in STATIC_SETTINGS or key.startswith(STATIC_SETTING_PREFIXES):
            reasons.append(f"static setting {key} changes ({observed_flat.get(key)} -> {value})")
        else:
            settings_update[key] = value

    mapping_changed = False
    for key in sorted(set(desired_mappings) | set(observed_mappings)):
        if key == "properties":
            continue
        if _normalized(desired_mappings.get(key)) == _normalized(observed_mappings.get(key)):
            continue
        mapping_changed = True
        if key not in UPDATABLE_MAPPING_KEYS:
            reasons.append(f"mapping setting {key} changes")
    added, incompatible = _compare_fields(
        "", desired_mappings.get("properties", {}), observed_mappings.get("properties", {})
    )
    reasons += incompatible
    mapping_changed = mapping_changed or added or bool(incompatible)

    if reasons:
        return IndexChange(ChangeKind.NEW_VERSION, tuple(reasons))
    if settings_update or mapping_changed:
        return IndexChange(ChangeKind.IN_PLACE, (), settings_update, mapping_changed)
    return IndexChange(ChangeKind.NONE)


def _compare_fields(
    path: str, desired: Mapping[str, Any], observed: Mapping[str, Any]
) -> tuple[bool, list[str]]:
    """(something was added, why the fields are incompatible) for one level of properties."""
    added = False
    reasons: list[str] = []
    for name in sorted(set(observed) - set(desired)):
        reasons.append(f"field {path}{name} removed")
    for name, wanted in sorted(desired.items()):
        have = observed.get(name)
        if have is None:
            added = True
            continue
        if _field_type(wanted) != _field_type(have):
            reasons.append(
                f"field {path}{name} changes type ({_field_type(have)} -> {_field_type(wanted)})"
            )
            continue
        defaults = {
            **DEFAULT_FIELD_PARAMETERS["*"],
            **DEFAULT_FIELD_PARAMETERS.get(_field_type(wanted), {}),
        }
        for parameter in sorted((set(wanted) | set(have)) - {"type", "properties", "fields"}):
            default = defaults.get(parameter)
            if _normalized(wanted.get(parameter, default)) == _normalized(
                have.get(parameter, default)
            ):
                continue
            if parameter in UPDATABLE_FIELD_PARAMETERS:
                added = True  # an in-place mapping update
            else:
                reasons.append(f"field {path}{name} changes {parameter}")
        for nested in ("properties", "fields"):
            inner_added, inner_reasons = _compare_fields(
                f"{path}{name}.", wanted.get(nested, {}), have.get(nested, {})
            )
            added = added or inner_added
            reasons += inner_reasons
    return added, reasons


def _field_type(definition: Mapping[str, Any]) -> str:
    # Elasticsearch leaves out "type": "object" when it answers with a mapping.
    return str(definition.get("type", "object"))


def _normalized(value: Any) -> Any:
    """Elasticsearch answers booleans and numbers of a mapping as it got them or as strings
    ("dynamic": "false"), so scalars are compared as strings."""
    if isinstance(value, Mapping):
        return {k: _normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return None if value is None else _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
