import datetime

import pytest
from django.db import IntegrityError, transaction
from django.db.models.signals import post_save
from django.utils import timezone

from reports.models import Report
from tests.factories import ReportFactory, violation_draft
from violations.models import Violation, ViolationSource
from violations.services import (
    create_violations_from_report,
    find_repost_source,
    link_repost,
)

pytestmark = pytest.mark.django_db

SHELLING = {
    "violation_type": "SHELLING",
    "location_name_en": "Maarat al-Numan",
    "location_name_ar": "معرة النعمان",
    "description_en": "Artillery shelling hit houses in Maarat al-Numan, "
    "injuring two children.",
    "description_ar": "قصف مدفعي على منازل في معرة النعمان أدى إلى إصابة طفلين",
    "casualties": 0,
    "injured": 2,
    "tags": [],
}


def test_new_draft_becomes_a_violation_with_the_reports_source_information():
    report = ReportFactory(
        channel="idlib_news",
        source_url="https://t.me/idlib_news/77",
        published_at=datetime.datetime(2025, 3, 15, 9, 0, tzinfo=datetime.UTC),
    )

    result = create_violations_from_report(report=report, drafts=[violation_draft()])

    violation = Violation.objects.get()
    assert result.created_ids == [violation.pk]
    assert result.violation_ids == [violation.pk]
    assert (result.violations_created, result.violations_merged) == (1, 0)
    assert result.merged == [] and result.errors == []
    assert violation.report_id == report.pk
    assert violation.source_urls == ["https://t.me/idlib_news/77"]
    assert violation.source_en == "idlib_news"
    assert violation.reported_date == datetime.date(2025, 3, 15)
    assert (violation.casualties, violation.injured, violation.kidnapped) == (3, 5, 0)
    assert violation.location_key_ar == "كفرنبل"
    link = ViolationSource.objects.get()
    assert (link.report_id, link.role) == (report.pk, ViolationSource.Role.CREATED)
    assert link.figures == {
        "casualties": 3,
        "injured": 5,
        "kidnapped": 0,
        "detained": 0,
        "displaced": 0,
    }
    assert link.draft["incident_date"] == "2025-03-14"


def test_reported_date_from_the_draft_is_kept():
    report = ReportFactory()
    draft = violation_draft(reported_date=datetime.date(2025, 3, 16))

    create_violations_from_report(report=report, drafts=[draft])

    assert Violation.objects.get().reported_date == datetime.date(2025, 3, 16)


def test_one_bad_draft_is_recorded_and_the_others_are_stored():
    report = ReportFactory()
    drafts = [
        violation_draft(),
        violation_draft(description_en="short"),
        violation_draft(**SHELLING),
    ]

    result = create_violations_from_report(report=report, drafts=drafts)

    assert result.errors == [
        {
            "index": 1,
            "reason": "description_en: Ensure this value has at least 10 "
            "characters (it has 5).",
        }
    ]
    assert Violation.objects.count() == 2
    assert result.violations_created == 2
    assert set(report.violation_ids) == set(result.violation_ids)


def test_draft_breaking_a_domain_rule_is_recorded_with_the_rule():
    report = ReportFactory()
    drafts = [violation_draft(violation_type="DETENTION", detained=0)]

    result = create_violations_from_report(report=report, drafts=drafts)

    assert result.errors == [
        {
            "index": 0,
            "reason": "detained: A detention must have detained people (more than 0).",
        }
    ]
    assert not Violation.objects.exists()


def test_draft_with_an_unknown_field_is_recorded_not_raised():
    report = ReportFactory()

    result = create_violations_from_report(
        report=report, drafts=[violation_draft(weather="rain"), violation_draft()]
    )

    assert [error["index"] for error in result.errors] == [0]
    assert "weather" in result.errors[0]["reason"]
    assert Violation.objects.count() == 1


def test_a_constraint_failure_rolls_back_only_that_drafts_rows():
    report = ReportFactory()
    links = []

    def refuse_second_link(sender, instance, created, **kwargs):
        links.append(instance.pk)
        if len(links) == 2:
            raise IntegrityError("duplicate key value violates unique constraint")

    post_save.connect(refuse_second_link, sender=ViolationSource)
    try:
        result = create_violations_from_report(
            report=report,
            drafts=[
                violation_draft(),
                violation_draft(**SHELLING),
                violation_draft(violation_type="EXPLOSION"),
            ],
        )
    finally:
        post_save.disconnect(refuse_second_link, sender=ViolationSource)

    assert result.errors == [
        {"index": 1, "reason": "duplicate key value violates unique constraint"}
    ]
    # The shelling violation was inserted before its link failed; it went too.
    types = Violation.objects.order_by("id").values_list("violation_type", flat=True)
    assert list(types) == ["AIRSTRIKE", "EXPLOSION"]
    assert ViolationSource.objects.count() == 2
    assert result.violation_ids == list(
        Violation.objects.order_by("id").values_list("id", flat=True)
    )


@pytest.mark.postgres
def test_text_the_database_refuses_is_recorded_as_that_drafts_error():
    report = ReportFactory()

    result = create_violations_from_report(
        report=report,
        drafts=[violation_draft(description_ar="قصف\x00 جوي"), violation_draft()],
    )

    assert [error["index"] for error in result.errors] == [0]
    assert "NUL" in result.errors[0]["reason"]
    assert Violation.objects.count() == 1


def test_drafts_of_one_report_that_match_each_other_become_one_violation():
    report = ReportFactory()
    retold = violation_draft(
        description_en="Airstrike on the Kafranbel market killed three civilians "
        "and injured five others.",
        casualties=4,
        tags=["civilians"],
    )

    result = create_violations_from_report(
        report=report, drafts=[violation_draft(), retold, violation_draft(**SHELLING)]
    )

    first, shelling = Violation.objects.order_by("id")
    assert result.created_ids == [first.pk, shelling.pk]
    assert [pk for pk, _ in result.merged] == [first.pk]
    assert result.violation_ids == [first.pk, shelling.pk]
    assert (result.violations_created, result.violations_merged) == (2, 0)
    assert first.casualties == 4
    assert first.tags == ["market", "civilians"]
    link = ViolationSource.objects.get(violation=first)
    assert link.role == ViolationSource.Role.CREATED
    assert link.figures["casualties"] == 4
    assert link.changes == {
        "casualties": [3, 4],
        "tags": [["market"], ["market", "civilians"]],
    }


def test_creation_and_the_reports_outcome_commit_together():
    report = ReportFactory()
    Report.objects.claim(1)
    report.refresh_from_db()

    with transaction.atomic():
        result = create_violations_from_report(
            report=report, drafts=[violation_draft(), violation_draft(**SHELLING)]
        )
        report.mark_as_processed(
            result.violation_ids, 1200, violations_merged=result.violations_merged
        )

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSED
    assert report.violations_created == 2
    assert report.violation_ids == sorted(result.violation_ids)


def test_a_crash_after_some_violations_were_written_leaves_nothing_behind():
    report = ReportFactory()
    saved = []

    def fail_on_second_violation(sender, instance, created, **kwargs):
        saved.append(instance.pk)
        if len(saved) == 2:
            raise RuntimeError("disk full")

    post_save.connect(fail_on_second_violation, sender=Violation)
    try:
        with pytest.raises(RuntimeError, match="disk full"):
            create_violations_from_report(
                report=report, drafts=[violation_draft(), violation_draft(**SHELLING)]
            )
    finally:
        post_save.disconnect(fail_on_second_violation, sender=Violation)

    assert len(saved) == 2
    assert not Violation.objects.exists()
    assert not ViolationSource.objects.exists()


def test_a_crash_inside_the_callers_transaction_leaves_nothing_behind():
    report = ReportFactory()

    with pytest.raises(RuntimeError, match="worker killed"), transaction.atomic():
        create_violations_from_report(report=report, drafts=[violation_draft()])
        assert Violation.objects.count() == 1
        raise RuntimeError("worker killed")

    assert not Violation.objects.exists()
    assert not ViolationSource.objects.exists()


def test_repost_source_is_an_earlier_processed_report_with_the_same_text():
    original = ReportFactory(
        text="قصفٌ جوي على بلدة كفرنبل!", status=Report.Status.PROCESSED
    )
    ReportFactory(text="قصف جوي على بلدة كفرنبل", status=Report.Status.UNPROCESSED)
    repost = ReportFactory(text="قصف جوي على بلدة  كفرنبل")

    assert find_repost_source(repost) == original
    assert find_repost_source(original) is None


def test_report_with_new_text_has_no_repost_source():
    ReportFactory(text="قصف جوي على بلدة كفرنبل", status=Report.Status.PROCESSED)

    assert find_repost_source(ReportFactory(text="اشتباكات في ريف حلب الغربي")) is None


def test_link_repost_links_the_sources_violations_and_records_the_repeat():
    original = ReportFactory(status=Report.Status.PROCESSED)
    created = create_violations_from_report(
        report=original, drafts=[violation_draft(), violation_draft(**SHELLING)]
    )
    repost = ReportFactory(text=original.text + " ", source_url="https://t.me/x/9")

    violation_ids = link_repost(report=repost, source=original)

    repost.refresh_from_db()
    assert violation_ids == sorted(created.violation_ids)
    assert repost.duplicate_of_id == original.pk
    assert repost.violation_ids == sorted(created.violation_ids)
    for violation in Violation.objects.all():
        assert violation.report_id == original.pk
        assert violation.report_ids == [original.pk, repost.pk]
        assert violation.source_urls == [original.source_url, "https://t.me/x/9"]
    link = ViolationSource.objects.get(report=repost, violation_id=violation_ids[0])
    assert (link.role, link.similarity) == (ViolationSource.Role.REPOST, 1.0)
    assert link.figures["casualties"] == 3


def test_reported_date_defaults_to_the_scrape_day_without_a_publication_time():
    scraped = timezone.now() - datetime.timedelta(days=2)
    report = ReportFactory(published_at=None, scraped_at=scraped)

    create_violations_from_report(report=report, drafts=[violation_draft()])

    assert Violation.objects.get().reported_date == timezone.localdate(scraped)
