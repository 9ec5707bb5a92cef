import datetime

import pytest
from django.contrib.admin.sites import site
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import RequestFactory
from django.urls import reverse

from reports.models import Report
from tests.factories import ReportFactory

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
TRIGRAM_INDEXES = {"report_text_trgm", "report_source_url_trgm", "report_channel_trgm"}


def report_indexes() -> set[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(
            cursor, Report._meta.db_table
        )
    return {name for name, info in constraints.items() if info["index"]}


def plan_without_seqscan(queryset) -> str:
    """The plan PostgreSQL picks when a sequential scan is off the table.

    A test table is small enough that a scan is always cheapest; turning scans
    off shows which index the planner can use, as it would on a large table.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        return queryset.explain()


@pytest.mark.django_db
def test_the_report_list_is_newest_first_by_scraped_time(staff_client):
    middle = ReportFactory(scraped_at=NOW - datetime.timedelta(hours=1))
    newest = ReportFactory(scraped_at=NOW)
    oldest = ReportFactory(scraped_at=NOW - datetime.timedelta(days=1))

    response = staff_client.get(reverse("admin:reports_report_changelist"))

    result = list(response.context["cl"].result_list)
    assert result == [newest, middle, oldest]


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_page_of_the_report_list_is_read_from_the_newest_first_index():
    ReportFactory.create_batch(3)
    admin = site._registry[Report]
    request = RequestFactory().get("/")
    ordered = Report.objects.order_by(*admin.get_ordering(request))

    plan = plan_without_seqscan(ordered[:100])

    assert "report_newest" in plan
    assert "Sort" not in plan


@pytest.mark.postgres
@pytest.mark.django_db
def test_searching_the_text_uses_the_trigram_index():
    ReportFactory.create_batch(3)

    plan = plan_without_seqscan(Report.objects.filter(text__icontains="airstrike"))

    assert "report_text_trgm" in plan


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_admin_search_can_read_one_trigram_index_per_field():
    ReportFactory.create_batch(3)
    admin = site._registry[Report]
    request = RequestFactory().get("/", {"q": "Idlib"})
    found, _ = admin.get_search_results(request, Report.objects.all(), "Idlib")

    # Unordered: with its ordering the planner may also walk report_newest and
    # filter, which wins when matches are common (a page fills quickly).
    plan = plan_without_seqscan(found.order_by())

    assert {name for name in TRIGRAM_INDEXES if name in plan} == TRIGRAM_INDEXES


@pytest.mark.django_db(transaction=True)
def test_the_index_migration_reverses_and_applies_again():
    executor = MigrationExecutor(connection)
    executor.migrate([("reports", "0002_lease")])
    after_reverse = report_indexes()

    executor.loader.build_graph()
    executor.migrate([("reports", "0003_report_newest_and_trigram_search")])
    after_forward = report_indexes()

    trigram = TRIGRAM_INDEXES if connection.vendor == "postgresql" else set()
    assert after_reverse & ({"report_newest"} | TRIGRAM_INDEXES) == set()
    assert after_forward & ({"report_newest"} | TRIGRAM_INDEXES) == {
        "report_newest",
        *trigram,
    }
