"""What a merge changes on a violation, and how a split takes it back.

A merge only ever adds to a violation: what identifies the incident (type,
date, place) is never overwritten, though an empty place field may be filled;
other empty fields are filled; lists become unions; counts become the highest
any source reported; certainty, verification and flags only go up. Each
change is returned as ``{field: [before, after]}`` in JSON form, which is what
``ViolationSource.changes`` stores and ``revert_changes`` reads.
"""

import json
from collections.abc import Mapping
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from .choices import CERTAINTY_RANK, COUNT_FIELDS, PerpetratorAffiliation
from .models import Violation

# Never overwritten; filled only while empty. Coordinates travel as a pair.
PLACE_FIELDS = (
    "location_name_en",
    "location_name_ar",
    "admin_division_en",
    "admin_division_ar",
)
FILL_FIELDS = (
    "reported_date",
    "description_ar",
    "perpetrator_en",
    "perpetrator_ar",
    "source_en",
    "source_ar",
    "evidence",
    "verification_method",
    "victims",
)
UNION_FIELDS = ("source_urls", "media_links", "tags", "flag_reasons")


def json_ready(value: Any) -> Any:
    """The value as it reads back from a JSON field (dates as ISO strings)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def figures_of(values: Mapping[str, Any]) -> dict[str, int]:
    """The counts one source stated."""
    return {field: values.get(field) or 0 for field in COUNT_FIELDS}


def merge_values(violation: Violation, values: Mapping[str, Any]) -> dict[str, list]:
    """Applies a draft to ``violation`` in memory; returns {field: [before, after]}.

    Nothing is saved; the caller validates and saves the changed fields.
    """
    proposed = {
        **_filled(violation, values),
        **_unions(violation, values),
        **_raised(violation, values),
    }
    changes = {}
    for field, after in proposed.items():
        before = getattr(violation, field)
        if json_ready(before) != json_ready(after):
            changes[field] = [json_ready(before), json_ready(after)]
            setattr(violation, field, after)
    return changes


def revert_changes(violation: Violation, changes: Mapping[str, list]) -> list[str]:
    """Sets each changed field back to its "before" where it still holds "after".

    A field changed again since (by a later merge or by staff) is left alone,
    except a list: the items this change added are taken out of it.
    Returns the fields set back; nothing is saved.
    """
    reverted = []
    for field, (before, after) in changes.items():
        current = json_ready(getattr(violation, field))
        if current != after and field in UNION_FIELDS:
            # A later merge added more; take out only what this one added. An
            # item a later source also gave goes too: it recorded no change.
            added = [item for item in after if item not in before]
            setattr(violation, field, [item for item in current if item not in added])
            reverted.append(field)
            continue
        if current != after:
            continue
        model_field = Violation._meta.get_field(field)
        setattr(violation, field, model_field.to_python(before))
        reverted.append(field)
    return reverted


def _filled(violation: Violation, values: Mapping[str, Any]) -> dict[str, Any]:
    filled = {}
    for field in (*PLACE_FIELDS, *FILL_FIELDS):
        if not getattr(violation, field) and values.get(field):
            filled[field] = values[field]
    point = (values.get("latitude"), values.get("longitude"))
    if violation.latitude is None and violation.longitude is None and None not in point:
        filled["latitude"] = values["latitude"]
        filled["longitude"] = values["longitude"]
    unknown = PerpetratorAffiliation.UNKNOWN
    affiliation = values.get("perpetrator_affiliation") or unknown
    if violation.perpetrator_affiliation == unknown and affiliation != unknown:
        filled["perpetrator_affiliation"] = affiliation
    return filled


def _unions(violation: Violation, values: Mapping[str, Any]) -> dict[str, list]:
    unions = {}
    for field in UNION_FIELDS:
        current = list(getattr(violation, field) or [])
        added = [item for item in values.get(field) or [] if item not in current]
        if added:
            unions[field] = current + _unique(added)
    return unions


def _raised(violation: Violation, values: Mapping[str, Any]) -> dict[str, Any]:
    raised: dict[str, Any] = {}
    for field in COUNT_FIELDS:
        if (values.get(field) or 0) > getattr(violation, field):
            raised[field] = values[field]
    certainty = values.get("certainty")
    if certainty and CERTAINTY_RANK[certainty] > CERTAINTY_RANK[violation.certainty]:
        raised["certainty"] = certainty
    if values.get("verified") and not violation.verified:
        raised["verified"] = True
    if values.get("flagged") and not violation.flagged:
        raised["flagged"] = True
    return raised


def _unique(items: list) -> list:
    unique: list = []
    for item in items:
        if item not in unique:
            unique.append(item)
    return unique
