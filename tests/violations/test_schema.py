import datetime

import pytest

from tests.factories import shelling_item
from violations.rules import MAX_COUNT
from violations.schema import ViolationDraft, tool_input_schema, validate_items

TODAY = datetime.date(2025, 3, 20)
REPORT_DATE = datetime.date(2025, 3, 15)
REPORT_TEXT = (
    "عاجل | استشهاد 3 مدنيين وإصابة 5 آخرين جراء قصف مدفعي على أطراف كفرنبل "
    "أمس، واعتقال شابين على حاجز في المدينة."
)


def validate(*items, today=TODAY):
    return validate_items(
        list(items), report_text=REPORT_TEXT, report_date=REPORT_DATE, today=today
    )


def errors_of(bad_item, **kwargs):
    drafts, rejected = validate(bad_item, **kwargs)
    assert drafts == []
    return rejected[0]["errors"]


def test_valid_item_becomes_a_draft_with_model_field_values():
    drafts, rejected = validate(shelling_item())

    assert rejected == []
    fields = drafts[0].violation_fields()
    assert fields["violation_type"] == "SHELLING"
    assert fields["incident_date"] == datetime.date(2025, 3, 14)
    assert fields["reported_date"] == REPORT_DATE
    assert fields["casualties"] == 3
    assert fields["detained"] is None
    assert fields["flagged"] is False
    assert fields["media_links"] == []


def test_violation_fields_are_exactly_model_fields():
    from violations.models import Violation

    fields = validate(shelling_item())[0][0].violation_fields()

    model_fields = {f.name for f in Violation._meta.get_fields()}
    assert set(fields) <= model_fields
    assert {"source_urls", "source_en", "report", "verified"}.isdisjoint(fields)


def test_victims_become_plain_dicts_with_iso_dates():
    victim = {
        "name": "Ahmad",
        "age": 34,
        "gender": "male",
        "status": "civilian",
        "group_affiliation": "",
        "death_date": "2025-03-14",
    }

    drafts, _ = validate(shelling_item(victims=[victim]))

    assert drafts[0].violation_fields()["victims"] == [victim]


def test_invalid_items_are_rejected_alone_with_their_index():
    drafts, rejected = validate(
        shelling_item(violation_type="BOMBING"), shelling_item()
    )

    assert len(drafts) == 1
    assert rejected[0]["index"] == 0
    assert rejected[0]["item"]["violation_type"] == "BOMBING"
    assert rejected[0]["errors"][0].startswith("violation_type: Input should be ")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"casualties": -1}, "casualties: Input should be greater than or equal to 0."),
        (
            {"casualties": MAX_COUNT + 1},
            f"casualties: Input should be less than or equal to {MAX_COUNT}.",
        ),
        ({"injured": "5"}, "injured: Input should be a valid integer."),
        ({"injured": True}, "injured: Input should be a valid integer."),
        ({"latitude": 95.0}, "latitude: Input should be less than or equal to 90."),
        (
            {"longitude": -181},
            "longitude: Input should be greater than or equal to -180.",
        ),
        (
            {"incident_date": "14/03/2025"},
            "incident_date: Value error, must be a date written YYYY-MM-DD.",
        ),
        (
            {"certainty": "sure"},
            "certainty: Input should be 'possible', 'probable' or 'confirmed'.",
        ),
        (
            {"description_en": "short"},
            "description_en: String should have at least 10 characters.",
        ),
        (
            {"location_name_en": "x" * 201},
            "location_name_en: String should have at most 200 characters.",
        ),
        ({"colour": "red"}, "colour: Extra inputs are not permitted."),
    ],
)
def test_item_errors_name_the_field(values, expected):
    assert expected in errors_of(shelling_item(**values))


def test_missing_required_fields_are_each_reported():
    bad = shelling_item()
    del bad["violation_type"], bad["evidence"]

    assert errors_of(bad) == [
        "violation_type: Field required.",
        "evidence: Field required.",
    ]


def test_a_place_name_is_required():
    errors = errors_of(shelling_item(location_name_en=" ", location_name_ar=""))

    assert errors == [
        "item: Value error, a place name, English or Arabic, is required."
    ]


def test_incident_date_in_the_future_is_rejected():
    errors = errors_of(shelling_item(incident_date="2025-03-21"))

    assert "incident_date: The incident date 2025-03-21 is in the future." in errors


def test_incident_date_before_the_documented_period_is_rejected(settings):
    settings.VIOLATIONS_EARLIEST_INCIDENT_DATE = "2012-01-01"

    errors = errors_of(shelling_item(incident_date="2011-12-31"))

    assert errors == [
        "incident_date: 2011-12-31 is before the documented period, "
        "which starts on 2012-01-01."
    ]


def test_incident_after_the_report_date_is_rejected_beyond_a_day():
    next_day, _ = validate(shelling_item(incident_date="2025-03-16"))
    two_days = errors_of(shelling_item(incident_date="2025-03-17"))

    assert len(next_day) == 1
    assert two_days == [
        "incident_date: 2025-03-17 is after the report's date, 2025-03-15."
    ]


def test_domain_rules_apply_to_drafts():
    detention = shelling_item(
        violation_type="DETENTION",
        casualties=None,
        injured=None,
        evidence="واعتقال شابين على حاجز",
    )

    errors = errors_of(detention)

    assert errors == ["detained: A detention must have detained people (more than 0)."]


def test_victim_with_death_date_needs_casualties():
    victim = {
        "name": "",
        "age": None,
        "gender": "unknown",
        "status": "civilian",
        "group_affiliation": "",
        "death_date": "2025-03-14",
    }

    errors = errors_of(shelling_item(casualties=None, victims=[victim]))

    assert errors == ["victims: 1 victims have a death date but casualties is 0."]


def test_evidence_not_in_the_report_rejects_the_item():
    errors = errors_of(shelling_item(evidence="استشهاد 7 مدنيين"))

    assert errors == [
        "evidence: the quote 'استشهاد 7 مدنيين' does not occur in the report."
    ]


def test_ungrounded_figure_keeps_the_draft_flagged():
    drafts, rejected = validate(shelling_item(casualties=4))

    assert rejected == []
    fields = drafts[0].violation_fields()
    assert fields["flagged"] is True
    assert fields["flag_reasons"] == [
        "casualties: the figure 4 does not appear in the report."
    ]


def test_detention_with_dual_noun_is_grounded():
    detention = shelling_item(
        violation_type="DETENTION",
        casualties=None,
        injured=None,
        detained=2,
        evidence="واعتقال شابين على حاجز",
    )

    drafts, rejected = validate(detention)

    assert rejected == []
    assert drafts[0].flagged is False


def test_non_object_item_is_rejected():
    _, rejected = validate("AIRSTRIKE")

    assert rejected == [
        {
            "index": 0,
            "errors": ["item: expected an object, got str."],
            "item": "AIRSTRIKE",
        }
    ]


def test_tool_schema_is_closed_and_every_key_required():
    schema = tool_input_schema()
    item_schema = schema["properties"]["violations"]["items"]
    victim_schema = item_schema["properties"]["victims"]["items"]

    for obj in (schema, item_schema, victim_schema):
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])


def test_tool_schema_items_are_the_draft_fields():
    item_schema = tool_input_schema()["properties"]["violations"]["items"]
    draft_inputs = {
        name for name, field in ViolationDraft.model_fields.items() if not field.exclude
    }

    assert set(item_schema["properties"]) == draft_inputs
    assert set(item_schema["properties"]) == set(shelling_item())
