import datetime

import pytest

from tests.factories import ReportFactory, violation_draft
from violations.models import Violation, ViolationSource
from violations.services import create_violations_from_report

pytestmark = pytest.mark.django_db


def first_and_second(first: dict, second: dict):
    """Stores ``first`` from one report, then merges ``second`` from another."""
    original, later = ReportFactory(), ReportFactory()
    create_violations_from_report(report=original, drafts=[first])
    result = create_violations_from_report(report=later, drafts=[second])
    violation = Violation.objects.get()
    return violation, original, later, result


def test_merge_keeps_the_first_report_and_lists_both():
    violation, original, later, result = first_and_second(
        violation_draft(), violation_draft()
    )

    assert result.merged == [(violation.pk, 1.0)]
    assert (result.violations_created, result.violations_merged) == (0, 1)
    assert result.violation_ids == [violation.pk]
    assert violation.report_id == original.pk
    assert violation.report_ids == [original.pk, later.pk]
    assert later.violation_ids == [violation.pk]
    link = ViolationSource.objects.get(report=later)
    assert (link.role, link.similarity) == (ViolationSource.Role.MERGED, 1.0)


def test_merge_never_changes_type_date_or_place():
    violation, *_ = first_and_second(
        violation_draft(location_name_ar="", latitude=35.57, longitude=36.56),
        violation_draft(
            incident_date=datetime.date(2025, 3, 15),
            location_name_ar="كفرنبل",
            admin_division_en="Idlib countryside",
            latitude=35.58,
            longitude=36.57,
        ),
    )

    assert violation.violation_type == "AIRSTRIKE"
    assert violation.incident_date == datetime.date(2025, 3, 14)
    assert violation.location_name_en == "Kafranbel"
    assert violation.admin_division_en == "Idlib"
    assert (violation.latitude, violation.longitude) == (35.57, 36.56)
    # An empty place field may be filled: that describes the place, not moves it.
    assert violation.location_name_ar == "كفرنبل"
    assert violation.location_key_ar == "كفرنبل"


def test_merge_fills_empty_fields_and_unites_lists():
    violation, _, later, _ = first_and_second(
        violation_draft(
            perpetrator_en="",
            media_links=["https://t.me/a/1/photo"],
            tags=["market"],
        ),
        violation_draft(
            perpetrator_en="Russian air force",
            perpetrator_affiliation="russia",
            media_links=["https://t.me/b/2/video", "https://t.me/a/1/photo"],
            tags=["market", "children"],
            latitude=35.57,
            longitude=36.56,
        ),
    )

    assert violation.perpetrator_en == "Russian air force"
    assert violation.perpetrator_affiliation == "russia"
    assert violation.media_links == ["https://t.me/a/1/photo", "https://t.me/b/2/video"]
    assert violation.tags == ["market", "children"]
    assert violation.source_urls == [violation.report.source_url, later.source_url]
    assert (violation.latitude, violation.longitude) == (35.57, 36.56)


def test_counts_become_the_highest_any_source_reported_and_each_source_keeps_its_own():
    violation, original, later, _ = first_and_second(
        violation_draft(casualties=3, injured=5),
        violation_draft(casualties=4, injured=2),
    )

    assert (violation.casualties, violation.injured) == (4, 5)
    first = ViolationSource.objects.get(report=original)
    second = ViolationSource.objects.get(report=later)
    assert (first.figures["casualties"], first.figures["injured"]) == (3, 5)
    assert (second.figures["casualties"], second.figures["injured"]) == (4, 2)


def test_certainty_only_goes_up():
    raised, *_ = first_and_second(
        violation_draft(certainty="possible"), violation_draft(certainty="confirmed")
    )
    assert raised.certainty == "confirmed"

    Violation.objects.all().delete()
    kept, *_ = first_and_second(
        violation_draft(certainty="confirmed"), violation_draft(certainty="possible")
    )
    assert kept.certainty == "confirmed"


def test_verified_violation_stays_verified_after_a_merge():
    original = ReportFactory()
    create_violations_from_report(report=original, drafts=[violation_draft()])
    Violation.objects.update(verified=True, verification_method="Video geolocated")

    create_violations_from_report(report=ReportFactory(), drafts=[violation_draft()])

    violation = Violation.objects.get()
    assert violation.verified is True
    assert violation.verification_method == "Video geolocated"


def test_a_flagged_draft_flags_the_violation_and_adds_its_reasons():
    violation, *_ = first_and_second(
        violation_draft(flagged=True, flag_reasons=["casualties 3 not in text"]),
        violation_draft(flagged=True, flag_reasons=["place not in text"]),
    )

    assert violation.flagged is True
    assert violation.flag_reasons == ["casualties 3 not in text", "place not in text"]


def test_merge_records_what_it_changed_and_the_sources_own_account():
    second = violation_draft(
        casualties=4,
        certainty="confirmed",
        description_en="An airstrike hit the market in Kafranbel, killing "
        "four civilians and injuring five others.",
    )
    violation, _, later, _ = first_and_second(violation_draft(), second)

    link = ViolationSource.objects.get(report=later)
    assert link.changes == {
        "casualties": [3, 4],
        "certainty": ["probable", "confirmed"],
        "source_urls": [
            [violation.report.source_url],
            [violation.report.source_url, later.source_url],
        ],
    }
    assert link.description == second["description_en"]
    assert link.draft["casualties"] == 4
    assert 0.85 <= link.similarity < 1


def test_merge_of_a_repeated_draft_changes_nothing_but_the_sources():
    violation, _, later, _ = first_and_second(violation_draft(), violation_draft())

    link = ViolationSource.objects.get(report=later)
    assert list(link.changes) == ["source_urls"]
    assert violation.casualties == 3
