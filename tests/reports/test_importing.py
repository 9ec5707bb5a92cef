import datetime
import json
from pathlib import Path

import pytest
from django.utils import timezone

from reports.importing import (
    CHUNK_SIZE,
    ImportFileError,
    detect_language,
    import_reports_file,
)
from reports.models import Report, text_fingerprint
from tests.factories import ReportFactory

DATA = Path(__file__).resolve().parent.parent / "data"
UTC = datetime.UTC

pytestmark = pytest.mark.django_db


def write_jsonl(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


def post(number: int, **values) -> dict:
    return {
        "text": f"قصف جوي على بلدة كفرنبل أدى إلى مقتل مدنيين، رسالة رقم {number}",
        "source_url": f"https://t.me/idlib_now/{number}",
        "channel": "idlib_now",
        "message_id": number,
        "published_at": "2026-11-20T10:00:00+02:00",
        **values,
    }


class TestTelegramExport:
    def test_messages_become_reports_with_addresses_from_the_channel_url(self):
        result = import_reports_file(
            DATA / "telegram_export.json", channel_url="https://t.me/SyriaNewsNet"
        )

        assert result.imported == 3
        assert result.skipped_by_reason() == {
            "service message": 1,
            "text under 10 characters": 1,
        }
        urls = sorted(Report.objects.values_list("source_url", flat=True))
        assert urls == [
            "https://t.me/SyriaNewsNet/41",
            "https://t.me/SyriaNewsNet/42",
            "https://t.me/SyriaNewsNet/44",
        ]

    def test_text_parts_are_joined_and_fields_mapped(self):
        import_reports_file(DATA / "telegram_export.json", channel_url="@SyriaNewsNet")

        report = Report.objects.get(message_id=41)
        assert report.text == (
            "عاجل: قصف جوي على بلدة كفرنبل في ريف إدلب الجنوبي أدى إلى مقتل "
            "ثلاثة مدنيين #إدلب"
        )
        assert report.text_hash == text_fingerprint(report.text)
        assert report.channel == "SyriaNewsNet"
        assert report.language == Report.Language.ARABIC
        assert report.media_count == 1
        assert report.forwarded_from == ""
        # date_unixtime (UTC), not "date" (the exporting computer's clock).
        assert report.published_at == datetime.datetime(
            2026, 11, 20, 10, 30, tzinfo=UTC
        )
        assert report.status == Report.Status.UNPROCESSED
        assert report.metadata["photo"] == "photos/photo_1@20-11-2026_10-30-00.jpg"
        assert report.metadata["telegram_chat"] == {
            "name": "Syria News Network",
            "type": "public_channel",
            "id": 1234567890,
        }
        assert "text_entities" not in report.metadata

    def test_forwarded_english_message(self):
        import_reports_file(DATA / "telegram_export.json", channel_url="SyriaNewsNet")

        report = Report.objects.get(message_id=42)
        assert report.forwarded_from == "Idlib Civil Defence"
        assert report.language == Report.Language.ENGLISH
        assert report.media_count == 0

    def test_username_in_the_export_is_used_without_channel_url(self, tmp_path):
        export = json.loads((DATA / "telegram_export.json").read_text())
        export["username"] = "syria_news_net"
        path = tmp_path / "result.json"
        path.write_text(json.dumps(export))

        result = import_reports_file(path)

        assert result.imported == 3
        assert Report.objects.filter(channel="syria_news_net").count() == 3

    def test_export_without_username_needs_the_channel_url(self):
        path = DATA / "telegram_export.json"

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}: the export does not name the channel's public username, so "
            "the posts' addresses are unknown; pass --channel-url https://t.me/NAME."
        )
        assert Report.objects.count() == 0

    def test_channel_url_that_is_not_a_channel_is_refused(self):
        with pytest.raises(ImportFileError) as error:
            import_reports_file(
                DATA / "telegram_export.json", channel_url="https://example.org/x/y"
            )

        assert str(error.value) == (
            "--channel-url 'https://example.org/x/y' is not a public channel "
            "address such as https://t.me/NAME."
        )

    def test_json_that_is_not_an_export_is_refused(self, tmp_path):
        path = tmp_path / "result.json"
        path.write_text('{"chats": {"list": []}}')

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path, channel_url="https://t.me/some_channel")

        assert str(error.value) == (
            f"{path}: not a Telegram Desktop export of one chat "
            '(no "messages" list at the top level).'
        )

    def test_unreadable_text_part_names_the_message(self, tmp_path):
        export = json.loads((DATA / "telegram_export.json").read_text())
        export["messages"][2]["text"] = ["Shelling hit the market ", 7]
        path = tmp_path / "result.json"
        path.write_text(json.dumps(export))

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path, channel_url="https://t.me/SyriaNewsNet")

        assert str(error.value) == f"{path}, message 42: text: unreadable text part 7."
        assert Report.objects.count() == 0


class TestJsonLines:
    def test_every_field_is_mapped_and_the_rest_kept_as_metadata(self):
        result = import_reports_file(DATA / "reports.jsonl")

        assert result.imported == 3
        assert result.file_format == "jsonl"
        first = Report.objects.get(source_url="https://t.me/halab_today/1201")
        assert first.channel == "halab_today"
        assert first.message_id == 1201
        assert first.published_at == datetime.datetime(2026, 11, 21, 7, 15, tzinfo=UTC)
        assert first.language == Report.Language.ARABIC
        assert first.keywords == ["قصف", "إصابة"]
        assert first.media_count == 2
        assert first.view_count == 5400
        assert first.metadata == {"scraper": "telethon"}
        assert first.text_hash == text_fingerprint(first.text)

    def test_missing_values_get_defaults_and_unknown_keys_go_to_metadata(self):
        before = timezone.now()
        import_reports_file(DATA / "reports.jsonl")

        report = Report.objects.get(
            source_url="https://example.org/news/homs-checkpoint"
        )
        assert report.channel == ""
        assert report.message_id is None
        assert report.language == Report.Language.ENGLISH
        assert report.metadata == {"author": "Field desk"}
        assert report.scraped_at >= before

    def test_unix_time_string_ids_and_at_signs_are_accepted(self):
        import_reports_file(DATA / "reports.jsonl")

        report = Report.objects.get(source_url="https://t.me/suwayda24/877")
        assert report.channel == "suwayda24"
        assert report.message_id == 877
        assert report.published_at == datetime.datetime(2026, 11, 21, 16, 0, tzinfo=UTC)
        assert report.scraped_at == datetime.datetime(2026, 11, 21, 18, 0, tzinfo=UTC)

    def test_invalid_json_names_the_line_and_imports_nothing(self, tmp_path):
        path = write_jsonl(tmp_path / "posts.jsonl", post(1), post(2))
        with path.open("a") as stream:
            stream.write('{"text": "broken" "source_url": 1}\n')

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 3: invalid JSON (Expecting ',' delimiter, column 19)."
        )
        assert Report.objects.count() == 0

    def test_missing_source_url_names_the_line(self, tmp_path):
        record = post(2)
        del record["source_url"]
        path = write_jsonl(tmp_path / "posts.jsonl", post(1), record)

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == f"{path}, line 2: source_url is missing."
        assert Report.objects.count() == 0

    def test_unparseable_date_names_the_line_and_imports_nothing(self, tmp_path):
        path = write_jsonl(
            tmp_path / "posts.jsonl", post(1), post(2, published_at="yesterday")
        )

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 2: published_at: 'yesterday' is not a date and time "
            "(ISO 8601 such as 2026-03-01T14:05:00+02:00, or Unix seconds)."
        )
        assert Report.objects.count() == 0

    def test_text_over_the_limit_is_refused(self, tmp_path):
        path = write_jsonl(tmp_path / "posts.jsonl", post(1, text="x" * 10_001))

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 1: text: Ensure this value has at most 10000 characters "
            "(it has 10001)."
        )

    def test_publication_more_than_an_hour_ahead_is_refused(self, tmp_path):
        ahead = timezone.now() + datetime.timedelta(minutes=61)
        path = write_jsonl(
            tmp_path / "posts.jsonl", post(1, published_at=ahead.isoformat())
        )

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 1: published_at: "
            "The publication date is more than an hour ahead."
        )

    def test_publication_within_the_hour_is_accepted(self, tmp_path):
        ahead = timezone.now() + datetime.timedelta(minutes=50)
        path = write_jsonl(
            tmp_path / "posts.jsonl", post(1, published_at=ahead.isoformat())
        )

        assert import_reports_file(path).imported == 1

    def test_unknown_language_code_is_refused(self, tmp_path):
        path = write_jsonl(tmp_path / "posts.jsonl", post(1, language="fr"))

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 1: language: Value 'fr' is not a valid choice."
        )

    def test_invalid_url_is_refused(self, tmp_path):
        path = write_jsonl(tmp_path / "posts.jsonl", post(1, source_url="t.me/x/1"))

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == f"{path}, line 1: source_url: Enter a valid URL."

    def test_line_that_is_not_an_object_is_refused(self, tmp_path):
        path = tmp_path / "posts.jsonl"
        path.write_text('["text", "source_url"]\n')

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == f"{path}, line 1: not a JSON object."

    def test_short_texts_are_skipped_and_counted(self, tmp_path):
        path = write_jsonl(
            tmp_path / "posts.jsonl",
            post(1),
            post(2, text="  عاجل  "),
            post(3, text=""),
        )

        result = import_reports_file(path)

        assert result.imported == 1
        assert result.skipped_by_reason() == {"text under 10 characters": 2}
        assert [s.record for s in result.skipped] == ["line 2", "line 3"]


class TestCsv:
    def test_named_columns_are_mapped(self):
        result = import_reports_file(DATA / "reports.csv")

        assert result.imported == 2
        report = Report.objects.get(message_id=310)
        assert report.channel == "albab_news"
        assert report.language == Report.Language.ARABIC
        assert report.keywords == ["انفجار", "مقتل"]
        assert report.media_count == 1
        assert report.view_count == 1200
        assert report.published_at == datetime.datetime(2026, 11, 22, 5, 30, tzinfo=UTC)
        assert report.metadata == {"reporter": "desk A"}

    def test_json_list_keywords_and_empty_cells(self):
        import_reports_file(DATA / "reports.csv")

        report = Report.objects.get(message_id=55)
        assert report.keywords == ["drone", "strike"]
        assert report.view_count is None
        assert report.language == Report.Language.ENGLISH

    def test_missing_required_column_is_refused(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_text("text,url\nقصف جوي على بلدة كفرنبل,https://t.me/a/1\n")

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}: missing required column source_url (the header has: text, url)."
        )
        assert Report.objects.count() == 0

    def test_bad_number_names_the_line(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_text(
            "text,source_url,media_count\n"
            "قصف جوي على بلدة كفرنبل,https://t.me/a/1,1\n"
            "قصف جوي على بلدة البارة,https://t.me/a/2,two\n"
        )

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 3: media_count: 'two' is not a whole number."
        )
        assert Report.objects.count() == 0

    def test_line_numbers_count_quoted_line_breaks(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_text(
            "text,source_url,published_at\n"
            '"قصف جوي على بلدة كفرنبل\nفي ريف إدلب",https://t.me/a/1,\n'
            "قصف جوي على بلدة البارة,https://t.me/a/2,soon\n"
        )

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value).startswith(f"{path}, line 4: published_at: 'soon'")

    def test_row_with_too_many_values_is_refused(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_text("text,source_url\nقصف جوي على بلدة كفرنبل,https://t.me/a/1,x\n")

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}, line 2: more values than the header has columns."
        )

    def test_empty_file_is_refused(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_text("")

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == f"{path}: empty file, no header row."


class TestSkipping:
    def test_posts_already_imported_are_skipped_with_the_reason(self, tmp_path):
        ReportFactory(source_url="https://t.me/idlib_now/1", channel="x", message_id=9)
        ReportFactory(
            source_url="https://t.me/other/2", channel="idlib_now", message_id=2
        )
        path = write_jsonl(tmp_path / "posts.jsonl", post(1), post(2), post(3))

        result = import_reports_file(path)

        assert result.imported == 1
        assert [(s.record, s.reason, s.detail) for s in result.skipped] == [
            ("line 1", "source URL already imported", "https://t.me/idlib_now/1"),
            ("line 2", "channel message already imported", "idlib_now message 2"),
        ]
        assert Report.objects.count() == 3

    def test_repeats_within_a_file_are_skipped(self, tmp_path):
        path = write_jsonl(
            tmp_path / "posts.jsonl",
            post(1),
            post(1),
            post(1, source_url="https://t.me/idlib_now/1?single"),
        )

        result = import_reports_file(path)

        assert result.imported == 1
        assert [(s.record, s.reason, s.detail) for s in result.skipped] == [
            ("line 2", "repeated in this file", "same URL as line 1"),
            ("line 3", "repeated in this file", "same message as line 1"),
        ]
        assert Report.objects.count() == 1

    def test_importing_the_same_file_twice_imports_nothing_new(self):
        import_reports_file(DATA / "reports.jsonl")

        again = import_reports_file(DATA / "reports.jsonl")

        assert again.imported == 0
        assert again.skipped_by_reason() == {"source URL already imported": 3}
        assert Report.objects.count() == 3

    def test_dry_run_counts_but_writes_nothing(self):
        result = import_reports_file(DATA / "reports.jsonl", dry_run=True)

        assert result.imported == 3
        assert result.dry_run
        assert Report.objects.count() == 0

    def test_large_file_is_written_in_chunks(self, tmp_path):
        count = CHUNK_SIZE * 2 + 7
        path = write_jsonl(tmp_path / "posts.jsonl", *(post(n) for n in range(count)))

        result = import_reports_file(path)

        assert result.imported == count
        assert Report.objects.count() == count
        report = Report.objects.get(message_id=count - 1)
        assert report.text_hash == text_fingerprint(report.text)


class TestFiles:
    def test_unknown_suffix_asks_for_a_format(self, tmp_path):
        path = tmp_path / "posts.txt"
        path.write_text("")

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == (
            f"{path}: cannot tell the format from the suffix '.txt'; name it .json "
            "(Telegram export), .jsonl or .csv, or pass --format."
        )

    def test_format_can_be_given_for_any_suffix(self, tmp_path):
        path = write_jsonl(tmp_path / "posts.txt", post(1))

        assert import_reports_file(path, file_format="jsonl").imported == 1

    def test_missing_file(self, tmp_path):
        path = tmp_path / "absent.jsonl"

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert str(error.value) == f"{path}: no such file."

    def test_file_that_is_not_utf8(self, tmp_path):
        path = tmp_path / "posts.csv"
        path.write_bytes(b"text,source_url\n" + "قصف".encode("cp1256"))

        with pytest.raises(ImportFileError) as error:
            import_reports_file(path)

        assert (
            str(error.value) == f"{path}: not UTF-8 text (byte 16 cannot be decoded)."
        )


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("قصف جوي على بلدة كفرنبل أدى إلى مقتل ثلاثة مدنيين", "ar"),
        ("قصف جوي على كفرنبل https://example.org/a/very/long/link @SyriaNews", "ar"),
        ("An airstrike on Kafranbel killed three civilians.", "en"),
        ("Airstrike on Kafranbel قصف جوي على كفرنبل killed three", "mixed"),
        ("12:30 — 3 / 4 !!", "unknown"),
    ],
)
def test_language_is_detected_from_the_script(text, language):
    assert detect_language(text) == language
