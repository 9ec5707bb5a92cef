import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from reports.models import Report
from tests.factories import ReportFactory

DATA = Path(__file__).resolve().parent / "data"

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_reports", *args, stdout=out, no_color=True)
    return out.getvalue()


def test_imports_each_file_and_prints_a_summary():
    output = run(str(DATA / "reports.jsonl"), str(DATA / "reports.csv"))

    assert output.splitlines() == [
        f"{DATA / 'reports.jsonl'}: 3 imported.",
        f"{DATA / 'reports.csv'}: 2 imported.",
        "Imported 5 reports from 2 files, 0 skipped.",
    ]
    assert Report.objects.count() == 5


def test_skipped_posts_are_counted_by_reason():
    ReportFactory(source_url="https://t.me/SyriaNewsNet/42")

    output = run(
        str(DATA / "telegram_export.json"), "--channel-url", "https://t.me/SyriaNewsNet"
    )

    assert output.splitlines() == [
        f"{DATA / 'telegram_export.json'}: 2 imported, 3 skipped "
        "(1 service message, 1 text under 10 characters, "
        "1 source URL already imported).",
        "Imported 2 reports from 1 file, 3 skipped.",
    ]
    assert Report.objects.filter(channel="SyriaNewsNet").count() == 2


def test_verbosity_2_lists_every_skipped_post():
    run(str(DATA / "reports.jsonl"))

    output = run(str(DATA / "reports.jsonl"), "--verbosity", "2")

    assert output.splitlines() == [
        f"{DATA / 'reports.jsonl'}: 0 imported, 3 skipped "
        "(3 source URL already imported).",
        "  line 1 skipped: source URL already imported (https://t.me/halab_today/1201)",
        "  line 2 skipped: source URL already imported "
        "(https://example.org/news/homs-checkpoint)",
        "  line 4 skipped: source URL already imported (https://t.me/suwayda24/877)",
        "Imported 0 reports from 1 file, 3 skipped.",
    ]


def test_dry_run_writes_nothing():
    output = run(str(DATA / "reports.csv"), "--dry-run")

    assert output.splitlines() == [
        f"{DATA / 'reports.csv'}: 2 would be imported.",
        "Dry run: 2 reports would be imported from 1 file, 0 skipped; "
        "nothing was written.",
    ]
    assert Report.objects.count() == 0


def test_bad_file_stops_with_an_error_and_keeps_earlier_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = {"text": "قصف جوي على بلدة كفرنبل", "source_url": "https://t.me/a/1"}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({"text": "قصف جوي على"}))

    with pytest.raises(CommandError) as error:
        run(str(DATA / "reports.csv"), str(bad))

    assert str(error.value) == (
        f"{bad}, line 2: source_url is missing. Nothing from this file was imported."
    )
    assert sorted(Report.objects.values_list("source_url", flat=True)) == [
        "https://t.me/albab_news/310",
        "https://t.me/north_updates/55",
    ]


def test_telegram_export_without_channel_is_an_error():
    path = DATA / "telegram_export.json"

    with pytest.raises(CommandError) as error:
        run(str(path))

    assert str(error.value) == (
        f"{path}: the export does not name the channel's public username, so the "
        "posts' addresses are unknown; pass --channel-url https://t.me/NAME. "
        "Nothing from this file was imported."
    )
    assert Report.objects.count() == 0


def test_invalid_channel_url_is_refused_before_any_file_is_read():
    with pytest.raises(CommandError) as error:
        run(str(DATA / "reports.csv"), "--channel-url", "https://t.me/a/b")

    assert str(error.value) == (
        "--channel-url 'https://t.me/a/b' is not a public channel address such as "
        "https://t.me/NAME."
    )
    assert Report.objects.count() == 0


def test_format_option_overrides_the_suffix(tmp_path):
    path = tmp_path / "export.txt"
    path.write_text((DATA / "reports.jsonl").read_text())

    output = run(str(path), "--format", "jsonl")

    assert output.splitlines()[-1] == "Imported 3 reports from 1 file, 0 skipped."
