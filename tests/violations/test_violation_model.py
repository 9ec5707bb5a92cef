import datetime

import pytest
from django.core.exceptions import ValidationError

from tests.factories import ReportFactory, ViolationFactory
from violations.choices import ViolationType
from violations.models import ViolationSource

pytestmark = pytest.mark.django_db

TODAY = datetime.date.today()


def clean_errors(violation) -> dict:
    with pytest.raises(ValidationError) as caught:
        violation.full_clean()
    return caught.value.message_dict


def test_a_consistent_violation_passes_validation():
    ViolationFactory.build().full_clean()


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        (ViolationType.DETENTION, "detained"),
        (ViolationType.KIDNAPPING, "kidnapped"),
        (ViolationType.DISPLACEMENT, "displaced"),
    ],
)
def test_types_that_count_people_need_those_people(kind, field):
    errors = clean_errors(ViolationFactory.build(violation_type=kind))

    assert errors[field] == [
        f"A {kind.label.lower()} must have {field} people (more than 0)."
    ]


def test_a_verified_violation_names_its_method():
    errors = clean_errors(ViolationFactory.build(verified=True))

    assert errors["verification_method"] == [
        "A verified violation must name its verification method."
    ]


def test_victims_with_a_death_date_cannot_outnumber_casualties():
    day = str(TODAY - datetime.timedelta(days=1))
    victims = [{"death_date": day}, {"death_date": day}]

    errors = clean_errors(ViolationFactory.build(casualties=1, victims=victims))

    assert "2 victims have a death date but casualties is 1." in errors["victims"][0]


def test_no_victim_died_before_the_incident():
    incident = TODAY - datetime.timedelta(days=1)
    victims = [{"death_date": str(incident - datetime.timedelta(days=3))}]

    errors = clean_errors(
        ViolationFactory.build(incident_date=incident, victims=victims)
    )

    assert "Victim 1 died" in errors["victims"][0]


def test_victim_age_is_bounded():
    errors = clean_errors(ViolationFactory.build(victims=[{"age": 130}]))

    assert errors["victims"] == ["Victim 1: age must be 0 to 120."]


def test_incident_date_cannot_be_in_the_future():
    tomorrow = TODAY + datetime.timedelta(days=1)

    errors = clean_errors(ViolationFactory.build(incident_date=tomorrow))

    assert errors["incident_date"] == [
        f"The incident date {tomorrow} is in the future."
    ]


def test_reported_date_not_more_than_a_year_before_the_incident():
    incident = TODAY - datetime.timedelta(days=1)
    reported = incident - datetime.timedelta(days=400)

    errors = clean_errors(
        ViolationFactory.build(incident_date=incident, reported_date=reported)
    )

    assert "more than a year before" in errors["reported_date"][0]


def test_a_place_name_is_required():
    errors = clean_errors(
        ViolationFactory.build(location_name_en="", location_name_ar="")
    )

    assert errors["location_name_en"] == [
        "A place name, English or Arabic, is required."
    ]


def test_save_keeps_normalised_place_keys():
    violation = ViolationFactory(location_name_en="Al-Bab", location_name_ar="البابُ")

    assert violation.location_key_en == "bab"
    assert violation.location_key_ar == "الباب"


def test_a_corroborating_report_is_added_and_the_first_report_kept():
    first, second = ReportFactory(), ReportFactory()
    violation = ViolationFactory()

    assert violation.link_to_report(first) is True
    assert violation.link_to_report(second, role=ViolationSource.Role.MERGED) is True
    assert violation.link_to_report(second) is False

    violation.refresh_from_db()
    assert violation.report_id == first.pk
    assert violation.report_ids == [first.pk, second.pk]
    assert first.violation_ids == [violation.pk]
    assert second.violation_ids == [violation.pk]
