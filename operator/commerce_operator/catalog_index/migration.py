"""Which index version searches should use, where a version change goes, and how it is recorded
in status (pure).

The protocol of a version change (`reconcile.py` carries it out, one phase after the other,
each written to `status.migration` before it starts):

1. Creating: the target `<alias>-v<N+1>` is created from the spec, and the worker's checkpoint
   of the current version is saved as the target's, *before* any document is copied.
2. Copying: the current version is refreshed (a point in time sees refreshed documents only),
   then every document of it is written into the target with its own version as an external
   version (`elasticsearch_indices.py`); the target is refreshed.
3. Swapping: one `_aliases` request moves the alias (remove + add, atomic).
4. CleaningUp: versions beyond the retention are deleted; `status.migration` is removed.

Nothing is lost meanwhile: the sync worker keeps writing through the alias into the current
version; after the swap it reads the target's checkpoint, older than anything the copy missed,
and replays the catalog's changes from there into the target (external versions make what the
copy already brought a no-op). Searches use the alias, which always names a complete index.

Resuming: an operator that stops half-way leaves `status.migration` naming the target. The next
reconcile continues into that target when it still matches the spec (the copy starts over from
the first document: every document already copied answers 409 and counts as copied; the
target's checkpoint is kept, since it is older than anything the new copy could miss). A target
that no longer matches (the spec changed again meanwhile) is deleted and the next version
created instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from commerce_operator.catalog_index.mapping_changes import ChangeKind, plan_index_change
from commerce_operator.catalog_index.ports import ObservedIndices


class Phase(StrEnum):
    CREATING = "Creating"
    COPYING = "Copying"
    SWAPPING = "Swapping"
    CLEANING_UP = "CleaningUp"


def current_index(
    observed: ObservedIndices, last_current: str | None, migrating_to: str | None
) -> str | None:
    """The version searches should use. Normally the alias's one target; when the alias is
    gone or names several indices (drift), the version the status last named if it is still
    a candidate, else the newest version that is not an unfinished migration's target. None:
    no version exists, one must be created."""
    targets = [t for t in observed.alias_targets if t in observed.versions]
    if len(observed.alias_targets) == 1 and targets:
        return targets[0]
    candidates = targets or [name for name in observed.versions if name != migrating_to]
    if last_current in candidates:
        return last_current
    return max(candidates, key=lambda name: observed.versions[name].version, default=None)


def resume_target(
    observed: ObservedIndices,
    current: str,
    migrating_to: str | None,
    settings: Mapping[str, Any],
    mappings: Mapping[str, Any],
) -> str | None:
    """The target of an interrupted version change, if it can be carried on: it exists, is
    newer than the current version, and is exactly what the spec asks for."""
    target = observed.ours(migrating_to)
    source = observed.ours(current)
    if target is None or source is None or target.version <= source.version:
        return None
    change = plan_index_change(settings, mappings, target.settings, target.mappings)
    return target.name if change.kind is ChangeKind.NONE else None


def abandoned_target(
    observed: ObservedIndices, current: str, migrating_to: str | None, keep: str | None
) -> str | None:
    """The half-built target of an earlier version change that will not be finished (newer
    than the current version, and not the one being resumed): it is deleted."""
    target = observed.ours(migrating_to)
    source = observed.ours(current)
    if target is None or source is None or target.name == keep:
        return None
    return target.name if target.version > source.version else None


def migration_record(
    phase: Phase,
    source: str,
    target: str,
    *,
    copied: int,
    total: int,
    started_at: str,
) -> dict[str, Any]:
    return {
        "phase": phase.value,
        "fromIndex": source,
        "toIndex": target,
        "copiedDocuments": copied,
        "totalDocuments": total,
        "startedAt": started_at,
    }
