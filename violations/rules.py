"""Domain rules a documentation team relies on, checked on plain values.

The model's ``clean()`` and the validation of Claude's drafts both call
``rule_errors``, so a draft that could not be stored never passes validation.
"""

import datetime
from collections.abc import Mapping
from typing import Any

from .choices import COUNT_FIELDS, VictimGender, VictimStatus, ViolationType

# A count above this is not a plausible single incident; it is a misread.
MAX_COUNT = 100_000
MAX_VICTIM_AGE = 120
REPORTED_BEFORE_INCIDENT_LIMIT = datetime.timedelta(days=365)

# Types whose very meaning needs people counted in one field.
REQUIRED_COUNT = {
    ViolationType.DETENTION: "detained",
    ViolationType.KIDNAPPING: "kidnapped",
    ViolationType.DISPLACEMENT: "displaced",
}


def rule_errors(values: Mapping[str, Any], *, today: datetime.date) -> dict[str, str]:
    """Broken rules as {field: message}; empty when the values are consistent."""
    errors: dict[str, str] = {}
    errors.update(_count_errors(values))
    errors.update(_date_errors(values, today=today))
    errors.update(_victim_errors(values))
    if values.get("verified") and not (values.get("verification_method") or "").strip():
        errors["verification_method"] = (
            "A verified violation must name its verification method."
        )
    return errors


def _count_errors(values: Mapping[str, Any]) -> dict[str, str]:
    errors = {}
    for field in COUNT_FIELDS:
        count = values.get(field) or 0
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            errors[field] = f"{field} must be a whole number of people, 0 or more."
        elif count > MAX_COUNT:
            errors[field] = f"{field} of {count} is above the ceiling of {MAX_COUNT}."
    required = REQUIRED_COUNT.get(values.get("violation_type"))
    if required and required not in errors and not values.get(required):
        kind = ViolationType(values["violation_type"]).label.lower()
        errors[required] = f"A {kind} must have {required} people (more than 0)."
    return errors


def _date_errors(values: Mapping[str, Any], *, today: datetime.date) -> dict[str, str]:
    errors = {}
    incident = values.get("incident_date")
    reported = values.get("reported_date")
    if incident and incident > today:
        errors["incident_date"] = f"The incident date {incident} is in the future."
    if incident and reported and reported < incident - REPORTED_BEFORE_INCIDENT_LIMIT:
        errors["reported_date"] = (
            f"The reported date {reported} is more than a year before the "
            f"incident date {incident}."
        )
    return errors


def _victim_errors(values: Mapping[str, Any]) -> dict[str, str]:
    victims = values.get("victims") or []
    incident = values.get("incident_date")
    problems = []
    for number, victim in enumerate(victims, start=1):
        problems.extend(_one_victim_errors(number, victim, incident))
    dead = sum(1 for victim in victims if victim.get("death_date"))
    if dead > (values.get("casualties") or 0):
        problems.append(
            f"{dead} victims have a death date but casualties is "
            f"{values.get('casualties') or 0}."
        )
    return {"victims": " ".join(problems)} if problems else {}


def _one_victim_errors(
    number: int, victim: Mapping[str, Any], incident: datetime.date | None
) -> list[str]:
    problems = []
    age = victim.get("age")
    if age is not None and (
        not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= 120
    ):
        problems.append(f"Victim {number}: age must be 0 to {MAX_VICTIM_AGE}.")
    if victim.get("gender", "unknown") not in VictimGender.values:
        problems.append(f"Victim {number}: unknown gender {victim.get('gender')!r}.")
    if victim.get("status", "unknown") not in VictimStatus.values:
        problems.append(f"Victim {number}: unknown status {victim.get('status')!r}.")
    death = _as_date(victim.get("death_date"))
    if death is False:
        problems.append(f"Victim {number}: death date is not an ISO date.")
    elif death and incident and death < incident:
        problems.append(f"Victim {number} died ({death}) before the incident.")
    return problems


def _as_date(value: Any) -> datetime.date | None | bool:
    """A date, None when absent, or False when present but unreadable."""
    if not value:
        return None
    if isinstance(value, datetime.date):
        return value
    try:
        return datetime.date.fromisoformat(str(value))
    except ValueError:
        return False
