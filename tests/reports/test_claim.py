import datetime
import threading

import pytest
from django.db import connection

from reports.models import Report
from tests.factories import ReportFactory

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.django_db
def test_claim_moves_ready_reports_to_processing_in_queue_order():
    low = ReportFactory(scraped_at=NOW - datetime.timedelta(hours=1))
    high = ReportFactory(priority=Report.Priority.HIGH)
    ReportFactory(status=Report.Status.PROCESSED)

    claimed = Report.objects.claim(10, now=NOW)

    assert [report.pk for report in claimed] == [high.pk, low.pk]
    assert {report.status for report in claimed} == {Report.Status.PROCESSING}
    assert {report.attempts for report in claimed} == {1}
    assert len({report.claim_token for report in claimed}) == 1


@pytest.mark.django_db
def test_claim_takes_no_more_than_the_limit():
    ReportFactory.create_batch(5)

    assert len(Report.objects.claim(3, now=NOW)) == 3
    assert len(Report.objects.claim(3, now=NOW)) == 2
    assert Report.objects.claim(3, now=NOW) == []


@pytest.mark.django_db
def test_claim_picks_up_a_stuck_report_and_counts_a_new_attempt():
    stuck = ReportFactory(
        status=Report.Status.PROCESSING,
        attempts=1,
        started_at=NOW - datetime.timedelta(minutes=6),
    )

    claimed = Report.objects.claim(5, now=NOW)

    assert [report.pk for report in claimed] == [stuck.pk]
    assert claimed[0].attempts == 2
    assert claimed[0].started_at == NOW


def claim_concurrently(workers: int, limit: int) -> list[list[int]]:
    barrier = threading.Barrier(workers)
    results: list[list[int]] = [[] for _ in range(workers)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            barrier.wait()
            results[index] = [r.pk for r in Report.objects.claim(limit)]
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_on_postgresql_receive_disjoint_reports():
    ReportFactory.create_batch(40)

    results = claim_concurrently(workers=4, limit=8)

    claimed = [pk for result in results for pk in result]
    assert len(claimed) == 32
    assert len(set(claimed)) == 32
    assert all(len(result) == 8 for result in results)
    assert Report.objects.filter(status=Report.Status.PROCESSING).count() == 32


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_share_a_report_on_any_database():
    ReportFactory.create_batch(12)

    results = claim_concurrently(workers=3, limit=6)

    claimed = [pk for result in results for pk in result]
    assert len(claimed) == len(set(claimed)) == 12
    assert Report.objects.filter(attempts=1).count() == 12
