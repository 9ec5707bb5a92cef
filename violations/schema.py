"""Validation of the violations Claude returns, one item at a time.

``TOOL_INPUT_SCHEMA`` is the JSON schema of the ``record_violations`` tool,
which the API enforces (strict tool use). It cannot express everything: the
API's strict mode takes no numeric ranges or lengths, and none of the domain
rules. ``validate_items`` checks the rest on each item alone, so one bad item
does not sink the others: the pydantic model (types, enums, ranges, lengths
the database columns allow), the period dates may fall in, the domain rules
the Violation model enforces (``violations.rules``), and grounding in the
report text (``violations.grounding``).
"""

import datetime
import re
from collections.abc import Sequence
from typing import Annotated, Any

from django.conf import settings
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from .choices import (
    COUNT_FIELDS,
    Certainty,
    PerpetratorAffiliation,
    VictimGender,
    VictimStatus,
    ViolationType,
)
from .grounding import check_draft
from .rules import MAX_COUNT, MAX_VICTIM_AGE, rule_errors

# Publication times are UTC while incidents are dated in local time (Syria is
# UTC+3), so an incident may carry the day after the report's UTC date.
REPORT_DATE_TOLERANCE = datetime.timedelta(days=1)

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: Any) -> Any:
    """Accepts a date or a "YYYY-MM-DD" string; pydantic's lax mode takes more."""
    if value is None or isinstance(value, datetime.date):
        return value
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value.strip()):
        raise ValueError("must be a date written YYYY-MM-DD")
    return datetime.date.fromisoformat(value.strip())


IsoDate = Annotated[datetime.date, BeforeValidator(_iso_date)]
Count = Annotated[int | None, Field(strict=True, ge=0, le=MAX_COUNT)]


def bounded_text(max_length: int, min_length: int = 0) -> Any:
    """A stripped string type of bounded length (the database column's)."""
    return Annotated[
        str,
        Field(strict=True),
        StringConstraints(
            strip_whitespace=True, min_length=min_length, max_length=max_length
        ),
    ]


class VictimDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: bounded_text(200) = ""
    age: Annotated[int | None, Field(strict=True, ge=0, le=MAX_VICTIM_AGE)] = None
    gender: VictimGender = VictimGender.UNKNOWN
    status: VictimStatus = VictimStatus.UNKNOWN
    group_affiliation: bounded_text(200) = ""
    death_date: IsoDate | None = None


class ViolationDraft(BaseModel):
    """One violation as Claude described it, checked but not yet stored.

    Counts are None when the report does not state them. ``flagged`` and
    ``flag_reasons`` are set by grounding; ``reported_date`` by
    ``validate_items`` from the report.
    """

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    violation_type: ViolationType
    incident_date: IsoDate
    location_name_en: bounded_text(200) = ""
    location_name_ar: bounded_text(200) = ""
    admin_division_en: bounded_text(200) = ""
    admin_division_ar: bounded_text(200) = ""
    latitude: Annotated[float | None, Field(strict=True, ge=-90, le=90)] = None
    longitude: Annotated[float | None, Field(strict=True, ge=-180, le=180)] = None
    description_en: bounded_text(2000, min_length=10)
    description_ar: bounded_text(4000) = ""
    perpetrator_en: bounded_text(300) = ""
    perpetrator_ar: bounded_text(300) = ""
    perpetrator_affiliation: PerpetratorAffiliation = PerpetratorAffiliation.UNKNOWN
    certainty: Certainty = Certainty.POSSIBLE
    casualties: Count = None
    injured: Count = None
    kidnapped: Count = None
    detained: Count = None
    displaced: Count = None
    victims: list[VictimDraft] = Field(default_factory=list, max_length=500)
    tags: list[bounded_text(100)] = Field(default_factory=list, max_length=20)
    evidence: bounded_text(1000, min_length=1)

    reported_date: datetime.date | None = Field(default=None, exclude=True)
    flagged: bool = Field(default=False, exclude=True)
    flag_reasons: list[str] = Field(default_factory=list, exclude=True)

    @model_validator(mode="after")
    def _has_a_place(self) -> "ViolationDraft":
        if not (self.location_name_en or self.location_name_ar):
            raise ValueError("a place name, English or Arabic, is required")
        return self

    def violation_fields(self) -> dict[str, Any]:
        """The values to store, keyed by Violation field name.

        A count the report does not state stays None ("not stated", stored
        as the field's default, 0); victims are plain dicts with ISO date
        strings, ready for a JSON field.
        """
        fields = self.model_dump(mode="json", exclude={"victims", "incident_date"})
        fields.update(
            incident_date=self.incident_date,
            reported_date=self.reported_date,
            victims=[victim.model_dump(mode="json") for victim in self.victims],
            media_links=[],
            flagged=self.flagged,
            flag_reasons=list(self.flag_reasons),
        )
        return fields


def validate_items(
    items: Sequence[Any],
    *,
    report_text: str,
    report_date: datetime.date | None,
    today: datetime.date,
) -> tuple[list[ViolationDraft], list[dict[str, Any]]]:
    """Splits Claude's items into valid drafts and rejected items.

    Each rejected item is ``{"index", "errors", "item"}`` with every error
    found, as "field: message" strings. Valid drafts are flagged when a
    figure or the place is not in the report (see ``violations.grounding``).
    """
    drafts, rejected = [], []
    for index, item in enumerate(items):
        draft, errors = validate_item(
            item, report_text=report_text, report_date=report_date, today=today
        )
        if errors:
            rejected.append({"index": index, "errors": errors, "item": item})
        else:
            drafts.append(draft)
    return drafts, rejected


def validate_item(
    item: Any,
    *,
    report_text: str,
    report_date: datetime.date | None,
    today: datetime.date,
) -> tuple[ViolationDraft | None, list[str]]:
    """One item as a draft, or None and the reasons it cannot be one."""
    if not isinstance(item, dict):
        return None, [f"item: expected an object, got {type(item).__name__}."]
    try:
        draft = ViolationDraft.model_validate(item)
    except ValidationError as exc:
        return None, pydantic_errors(exc)

    draft.reported_date = report_date
    errors = period_errors(draft, report_date=report_date, today=today)
    values = draft.violation_fields()
    errors += [
        f"{name}: {message}"
        for name, message in rule_errors(values, today=today).items()
    ]

    grounding = check_draft(values, report_text)
    errors += grounding.errors
    if errors:
        return None, errors
    draft.flagged = bool(grounding.flags)
    draft.flag_reasons = grounding.flags
    return draft, []


def period_errors(
    draft: ViolationDraft, *, report_date: datetime.date | None, today: datetime.date
) -> list[str]:
    """Dates before the documented period or after the report was published."""
    errors = []
    earliest = earliest_incident_date()
    if draft.incident_date < earliest:
        errors.append(
            f"incident_date: {draft.incident_date} is before the documented period, "
            f"which starts on {earliest}."
        )
    # A date in the future is a domain rule (violations.rules), checked there.
    if (
        report_date
        and today >= draft.incident_date > report_date + REPORT_DATE_TOLERANCE
    ):
        errors.append(
            f"incident_date: {draft.incident_date} is after the report's date, "
            f"{report_date}."
        )
    return errors


def earliest_incident_date() -> datetime.date:
    value = settings.VIOLATIONS_EARLIEST_INCIDENT_DATE
    if isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(value)


def pydantic_errors(exc: ValidationError) -> list[str]:
    """Pydantic's errors as "field: message" strings, the item's own input left out."""
    messages = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "item"
        messages.append(f"{where}: {error['msg']}.")
    return messages


def _nullable(kind: str, description: str) -> dict[str, Any]:
    return {"type": [kind, "null"], "description": description}


def _string(description: str = "", **extra: Any) -> dict[str, Any]:
    schema = {"type": "string", **extra}
    if description:
        schema["description"] = description
    return schema


def _closed_object(properties: dict[str, Any]) -> dict[str, Any]:
    # Strict tool use needs every object closed and every key required;
    # "not stated" is null or an empty string, never a missing key.
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def tool_input_schema() -> dict[str, Any]:
    """The JSON schema of the ``record_violations`` tool input.

    Item keys are named like the Violation fields. Ranges and lengths are left
    to ``validate_items``: strict mode accepts no numeric or length limits.
    """
    count = "People; null when the report does not state it."
    victim = _closed_object(
        {
            "name": _string("Name as written, or empty."),
            "age": _nullable("integer", "Age in years, or null."),
            "gender": _string(enum=list(VictimGender.values)),
            "status": _string(enum=list(VictimStatus.values)),
            "group_affiliation": _string("Group the victim belonged to, or empty."),
            "death_date": _nullable("string", "YYYY-MM-DD if the victim died."),
        }
    )
    item = _closed_object(
        {
            "violation_type": _string(enum=list(ViolationType.values)),
            "incident_date": _string("YYYY-MM-DD", format="date"),
            "location_name_en": _string("Place in English, or empty."),
            "location_name_ar": _string("Place in Arabic, or empty."),
            "admin_division_en": _string("Governorate in English, or empty."),
            "admin_division_ar": _string("Governorate in Arabic, or empty."),
            "latitude": _nullable("number", "Only if the report gives it."),
            "longitude": _nullable("number", "Only if the report gives it."),
            "description_en": _string("One or two sentences in English."),
            "description_ar": _string("The same in Arabic."),
            "perpetrator_en": _string("As the report names them, or empty."),
            "perpetrator_ar": _string("As the report names them, or empty."),
            "perpetrator_affiliation": _string(
                enum=list(PerpetratorAffiliation.values)
            ),
            "certainty": _string(enum=list(Certainty.values)),
            **{name: _nullable("integer", count) for name in COUNT_FIELDS},
            "victims": {"type": "array", "items": victim},
            "tags": {"type": "array", "items": {"type": "string"}},
            "evidence": _string("A short verbatim quote from the report."),
        }
    )
    return _closed_object(
        {
            "violations": {"type": "array", "items": item},
            "no_violation_reason": _string(
                "Why the report holds no violation; empty when it does."
            ),
        }
    )
