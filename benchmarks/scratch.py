"""The scratch database a benchmark runs on, so it never touches real data.

Either a temporary SQLite file or the PostgreSQL database named by --pg-name,
created empty and migrated at the start, and removed at the end.
"""

import argparse
import os
import tempfile
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser, *, pg_name: str) -> None:
    """The --database, --pg-server and --pg-name options ``configure`` reads."""
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="where the scratch database lives",
    )
    parser.add_argument(
        "--pg-server",
        default="postgres://postgres@127.0.0.1:5432",
        help="PostgreSQL server URL, without a database name",
    )
    parser.add_argument(
        "--pg-name", default=pg_name, help="scratch PostgreSQL database"
    )


def configure(args: argparse.Namespace, *, prefix: str) -> str:
    """Points Django at a fresh scratch database and migrates it; returns its URL.

    An existing PostgreSQL database of that name is dropped first.
    """
    if args.database == "sqlite":
        path = Path(tempfile.mkdtemp(prefix=f"{prefix}-")) / "scratch.sqlite3"
        url = f"sqlite:///{path}"
    else:
        drop_postgres(args)
        with connect_postgres(args) as conn:
            conn.execute(f'CREATE DATABASE "{args.pg_name}"')
        url = f"{args.pg_server}/{args.pg_name}"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reportsite.settings")

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return url


def drop(args: argparse.Namespace, url: str) -> None:
    """Removes the scratch database: a million rows take about a gigabyte."""
    from django.db import connections

    connections.close_all()
    if args.database == "postgres":
        drop_postgres(args)
        return
    path = Path(url.removeprefix("sqlite:///"))
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
    path.parent.rmdir()


def drop_postgres(args: argparse.Namespace) -> None:
    with connect_postgres(args) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.pg_name}"')


def connect_postgres(args: argparse.Namespace):
    """An autocommit connection to the server's maintenance database."""
    import psycopg

    return psycopg.connect(f"{args.pg_server}/postgres", autocommit=True)
