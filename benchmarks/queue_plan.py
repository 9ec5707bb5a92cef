"""Shows that the report queue stays an index lookup on a large table.

Loads N finished reports and a small waiting queue into a scratch PostgreSQL
database, then prints the query plan and timing of ``ready_for_processing``
and of ``claim``. Run by hand:

    .venv/bin/python benchmarks/queue_plan.py --reports 1000000 --waiting 2000

It creates (and on --drop, drops) the database named by --database; it never
touches the application's own database.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reports", type=int, default=1_000_000, help="finished reports"
    )
    parser.add_argument(
        "--waiting", type=int, default=2_000, help="reports in the queue"
    )
    parser.add_argument("--database", default="bench_queue", help="scratch database")
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--drop", action="store_true", help="drop the database after")
    return parser.parse_args()


def recreate_database(server: str, name: str) -> None:
    import psycopg

    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def load_reports(finished: int, waiting: int) -> None:
    from django.db import connection

    # generate_series keeps a million-row load to seconds; the rows differ in
    # the columns the queue query reads (status, priority, times, attempts).
    insert = """
        INSERT INTO reports_report (
            text, text_hash, source_url, channel, language, scraped_at, keywords,
            media_count, forwarded_from, metadata, priority, status, attempts,
            last_attempt, violations_created, violations_merged, error_category,
            error_message, ignore_reason, validation_errors, prompt_version,
            model_name, input_tokens, output_tokens, cache_read_tokens,
            cache_write_tokens, created_at)
        SELECT 'report text number ' || g, md5(g::text), 'https://t.me/b/' || g,
            'bench', 'ar', now() - (g || ' seconds')::interval, '[]', 0, '', '{}',
            CASE WHEN g %% 50 = 0 THEN 10 ELSE 0 END, %s,
            %s, now() - interval '2 hours', 0, 0, '', '', '', '[]', '', '',
            0, 0, 0, 0, now()
        FROM generate_series(%s, %s) AS g
    """
    with connection.cursor() as cursor:
        cursor.execute(insert, ["processed", 1, 1, finished])
        half = waiting // 2
        cursor.execute(insert, ["unprocessed", 0, finished + 1, finished + half])
        cursor.execute(
            insert, ["retry_pending", 1, finished + half + 1, finished + waiting]
        )
        cursor.execute("ANALYZE reports_report")


def timed(function, repeat: int = 20) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main() -> None:
    args = parse_args()
    recreate_database(args.server, args.database)
    os.environ["DATABASE_URL"] = f"{args.server}/{args.database}"
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reportsite.settings")

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction

    from reports.models import Report

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    load_reports(args.reports, args.waiting)
    print(
        f"loaded {args.reports + args.waiting} reports in "
        f"{time.perf_counter() - started:.1f} s"
    )

    ready = Report.objects.ready_for_processing(15)
    print("\nplan of ready_for_processing(15):")
    print(ready.explain(analyze=True))
    print(
        f"\nready_for_processing(15): {timed(lambda: list(ready.all())):.2f} ms median"
    )

    def claim_and_roll_back() -> None:
        with transaction.atomic():
            Report.objects.claim(15)
            transaction.set_rollback(True)

    print(f"claim(15), rolled back: {timed(claim_and_roll_back):.2f} ms median")
    sweep = timed(Report.objects.fail_exhausted_stuck)
    print(f"  of which the stuck sweep: {sweep:.2f} ms median")
    stuck = Report.objects.filter(status="processing", attempts__gte=3)
    print("\nplan of the stuck sweep's filter:")
    print(stuck.explain(analyze=True))

    if args.drop:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(f"{args.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{args.database}"')


if __name__ == "__main__":
    main()
