"""Times the admin's report pages on a large PostgreSQL table.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
        .venv/bin/python -m tests.admin.benchmark_changelist --rows 1000000

Fills ``test_<name>`` (kept between runs) with ``--rows`` reports, then
requests each page a few times through the test client and prints the best
time and the number of queries. Not part of the test suite.
"""

import argparse
import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import (  # noqa: E402
    CaptureQueriesContext,
    setup_test_environment,
)

from reports.models import Report  # noqa: E402
from tests.factories import ReportFactory  # noqa: E402

STATUSES = "ARRAY['processed','processed','processed','failed','ignored',"
STATUSES += "'unprocessed','retry_pending']"
TEMPLATE_URL = "https://t.me/bench/template"
# SQL expressions per column (``n`` is the row number); %% is a literal %.
OVERRIDES = {
    "source_url": "'https://t.me/bench/' || n",
    "message_id": "n",
    "channel": "'channel_' || (n %% 40)",
    "text": "text || ' #' || n",
    "status": f"({STATUSES})[1 + n %% 7]",
    "scraped_at": "now() - make_interval(secs => n)",
    "finished_at": "now() - make_interval(secs => n)",
    "processing_time_ms": "1000 + n %% 9000",
    "violations_created": "n %% 3",
    "input_tokens": "1500 + n %% 500",
    "output_tokens": "300 + n %% 200",
}
PAGES = [
    ("change list", "/admin/reports/report/", {}),
    ("filtered by status", "/admin/reports/report/", {"status__exact": "failed"}),
    ("filtered by channel", "/admin/reports/report/", {"channel": "channel_7"}),
    ("page 500", "/admin/reports/report/", {"p": "500"}),
    ("search, one match", "/admin/reports/report/", {"q": "123456"}),
    ("search, no match", "/admin/reports/report/", {"q": "Saraqib"}),
    ("dashboard", "/admin/reports/report/dashboard/", {}),
]


def fill(rows: int) -> None:
    """Adds reports until there are ``rows``; PostgreSQL writes them in one go."""
    missing = rows - Report.objects.count()
    if missing <= 0:
        return
    template = Report.objects.filter(source_url=TEMPLATE_URL).first()
    template = template or ReportFactory(message_id=None, source_url=TEMPLATE_URL)
    quote = connection.ops.quote_name
    columns = [f.column for f in Report._meta.concrete_fields if f.column != "id"]
    values = [OVERRIDES.get(column, quote(column)) for column in columns]
    start = Report.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO reports_report ({', '.join(map(quote, columns))}) "
            f"SELECT {', '.join(values)} FROM reports_report, "
            "generate_series(%s, %s) AS n WHERE id = %s",
            [start, start + missing - 1, template.pk],
        )
        cursor.execute("ANALYZE reports_report")


def measure(client: Client, url: str, query: dict, repeat: int) -> tuple[float, int]:
    best = float("inf")
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, query)
            best = min(best, time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
    return best, len(queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="reports wanted")
    parser.add_argument("--repeat", type=int, default=3, help="requests per page")
    options = parser.parse_args()
    assert connection.vendor == "postgresql", "set DATABASE_URL to PostgreSQL"

    setup_test_environment()
    # One database kept between runs, not the test run's per-process name.
    connection.settings_dict["TEST"]["NAME"] = (
        f"test_{connection.settings_dict['NAME']}"
    )
    connection.creation.create_test_db(verbosity=0, keepdb=True, serialize=False)
    started = time.perf_counter()
    fill(options.rows)
    elapsed = time.perf_counter() - started
    print(f"{Report.objects.count()} reports ready in {elapsed:.1f} s")

    admin, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    for name, url, query in PAGES:
        seconds, queries = measure(client, url, query, options.repeat)
        print(f"{name:<22} {seconds * 1000:8.0f} ms {queries:3d} queries")


if __name__ == "__main__":
    main()
