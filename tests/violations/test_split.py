import pytest

from tests.factories import ReportFactory, violation_draft
from violations.models import Violation, ViolationSource
from violations.services import create_violations_from_report, split_source

pytestmark = pytest.mark.django_db

LATER = {
    "casualties": 4,
    "injured": 2,
    "certainty": "confirmed",
    "perpetrator_en": "Russian air force",
    "tags": ["market", "children"],
    "description_en": "An airstrike hit the market in Kafranbel, killing four "
    "civilians and injuring two others.",
}


@pytest.fixture
def merged():
    """A violation from one report with a second report merged into it."""
    original, later = ReportFactory(), ReportFactory()
    create_violations_from_report(report=original, drafts=[violation_draft()])
    create_violations_from_report(report=later, drafts=[violation_draft(**LATER)])
    violation = Violation.objects.get()
    assert violation.report_ids == [original.pk, later.pk]
    return violation, ViolationSource.objects.get(report=later)


def test_split_gives_the_merged_report_its_own_violation(merged):
    violation, source = merged

    split_off = split_source(source)

    violation.refresh_from_db()
    split_off.refresh_from_db()
    assert violation.report_ids == [violation.report_id]
    assert split_off.report_id == source.report_id
    assert split_off.report_ids == [source.report_id]
    assert (split_off.casualties, split_off.injured) == (4, 2)
    assert split_off.certainty == "confirmed"
    assert split_off.perpetrator_en == "Russian air force"
    assert split_off.description_en == LATER["description_en"]
    assert split_off.source_urls == [source.report.source_url]
    link = ViolationSource.objects.get(violation=split_off)
    assert link.role == ViolationSource.Role.CREATED
    assert link.figures["casualties"] == 4


def test_split_sets_back_what_the_merge_changed(merged):
    violation, source = merged

    split_source(source)

    violation.refresh_from_db()
    assert (violation.casualties, violation.injured) == (3, 5)
    assert violation.certainty == "probable"
    assert violation.perpetrator_en == ""
    assert violation.tags == ["market"]
    assert violation.source_urls == [violation.report.source_url]


def test_split_leaves_a_field_staff_changed_since(merged):
    violation, source = merged
    Violation.objects.filter(pk=violation.pk).update(perpetrator_en="Unknown jets")

    split_source(source)

    violation.refresh_from_db()
    assert violation.perpetrator_en == "Unknown jets"
    assert violation.certainty == "probable"


def test_counts_after_a_split_are_the_highest_of_the_remaining_sources(merged):
    violation, source = merged
    third = ReportFactory()
    create_violations_from_report(
        report=third, drafts=[violation_draft(casualties=4, injured=1)]
    )

    split_source(source)

    violation.refresh_from_db()
    assert violation.report_ids == [violation.report_id, third.pk]
    assert (violation.casualties, violation.injured) == (4, 5)
    assert violation.source_urls == [violation.report.source_url, third.source_url]


def test_the_source_that_created_a_violation_cannot_be_split(merged):
    violation, _ = merged
    created = ViolationSource.objects.get(report=violation.report)

    with pytest.raises(ValueError, match=r"link \d+ is created"):
        split_source(created)

    assert Violation.objects.count() == 1
    assert violation.sources.count() == 2
