import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from reports.admin import EstimatedCountPaginator
from reports.models import Report
from tests.factories import ReportFactory

ROWS = EstimatedCountPaginator.exact_below * 2


def many_reports(count: int) -> None:
    """``count`` copies of one report, written by PostgreSQL in one statement."""
    template = ReportFactory(channel="scale", message_id=None)
    quote = connection.ops.quote_name
    copied = ", ".join(
        quote(field.column)
        for field in Report._meta.concrete_fields
        if field.column not in {"id", "source_url"}
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO reports_report ({copied}, source_url) "
            f"SELECT {copied}, 'https://t.me/scale/' || n "
            "FROM reports_report, generate_series(2, %s) AS n WHERE id = %s",
            [count, template.pk],
        )
        cursor.execute("ANALYZE reports_report")


@pytest.mark.postgres
@pytest.mark.django_db
def test_large_changelist_takes_its_count_from_the_planner(staff_client):
    many_reports(ROWS)

    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(reverse("admin:reports_report_changelist"))

    assert response.status_code == 200
    assert [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()] == []
    # ANALYZE read every row of a table this small, so the estimate is exact.
    assert response.context["cl"].result_count == ROWS
    assert len(response.context["cl"].result_list) == 100


@pytest.mark.postgres
@pytest.mark.django_db
def test_small_filtered_changelist_counts_exactly(staff_client):
    many_reports(ROWS)
    failed = Report.objects.order_by("pk").values("pk")[:7]
    Report.objects.filter(pk__in=failed).update(status=Report.Status.FAILED)

    response = staff_client.get(
        reverse("admin:reports_report_changelist"), {"status": "failed"}
    )

    assert response.context["cl"].result_count == 7
