import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess:
    """Imports the settings in a fresh interpreter with exactly ``env`` set."""
    clean = {"PATH": os.environ["PATH"], **env}
    return subprocess.run(
        [sys.executable, "-c", "import reportsite.settings as s; print(s.DATABASES)"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
    )


def test_a_missing_secret_key_without_debug_stops_start_up():
    result = load_settings()

    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_debug_allows_a_development_key():
    result = load_settings(DEBUG="true")

    assert result.returncode == 0, result.stderr


def test_sqlite_is_the_default_database_with_wal_and_immediate_transactions():
    result = load_settings(SECRET_KEY="x")

    assert "sqlite3" in result.stdout
    assert "journal_mode=WAL" in result.stdout
    assert "'transaction_mode': 'IMMEDIATE'" in result.stdout


def test_a_postgres_url_is_understood():
    result = load_settings(SECRET_KEY="x", DATABASE_URL="postgres://u@db:5432/reg")

    assert "django.db.backends.postgresql" in result.stdout
    assert "'NAME': 'reg'" in result.stdout


def test_a_bad_number_setting_is_named():
    result = load_settings(SECRET_KEY="x", REPORTS_BATCH_SIZE="fifteen")

    assert "REPORTS_BATCH_SIZE must be a number, not 'fifteen'" in result.stderr


def test_a_claude_timeout_too_long_for_the_stuck_timeout_is_refused():
    result = load_settings(SECRET_KEY="x", CLAUDE_TIMEOUT_SECONDS="200")

    assert "must stay under" in result.stderr
