import datetime
import re

from reports.models import Report
from reports.prompts import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    TOOL_NAME,
    build_user_message,
    record_violations_tool,
    report_date,
)
from violations.choices import PerpetratorAffiliation, ViolationType
from violations.grounding import VAGUE_QUANTITIES
from violations.text import fold_arabic


def sample_report(**values):
    base = {
        "text": "  استشهاد 3 مدنيين بقصف على كفرنبل أمس  ",
        "source_url": "https://t.me/idlib_now/10412",
        "channel": "idlib_now",
        "published_at": datetime.datetime(2025, 3, 15, 9, 30, tzinfo=datetime.UTC),
    }
    return Report(**{**base, **values})


def test_every_violation_type_has_a_line_in_the_prompt():
    for value in ViolationType.values:
        assert re.search(rf"^- {value}: \w", SYSTEM_PROMPT, re.MULTILINE), value


def test_every_affiliation_is_explained_in_the_prompt():
    for value in PerpetratorAffiliation.values:
        assert value in SYSTEM_PROMPT, value


def test_prompt_dates_the_change_of_government():
    assert "before 8 December 2024" in SYSTEM_PROMPT
    assert "from 8 December 2024 on" in SYSTEM_PROMPT


def test_prompt_vague_quantities_match_grounding():
    line = re.search(
        r"A vague quantity takes its least figure: (.*?)\.\n", SYSTEM_PROMPT
    )
    stated = {}
    for part in line.group(1).split(";"):
        words, figure = part.rsplit("=", 1)
        for word in words.split(","):
            word = fold_arabic(word.strip().removeprefix("a ").casefold())
            stated[word] = int(figure)

    assert stated == VAGUE_QUANTITIES


def test_prompt_is_short_and_versioned():
    assert len(SYSTEM_PROMPT.split()) < 800
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\d+", PROMPT_VERSION)


def test_tool_is_strict_and_named():
    tool = record_violations_tool()

    assert tool["name"] == TOOL_NAME == "record_violations"
    assert tool["strict"] is True
    assert tool["input_schema"]["required"] == ["violations", "no_violation_reason"]


def test_user_message_carries_channel_url_date_and_text():
    message = build_user_message(sample_report())

    assert message == (
        "Channel: idlib_now\n"
        "Source URL: https://t.me/idlib_now/10412\n"
        "Post date: 2025-03-15\n"
        "\n"
        "<post>\nاستشهاد 3 مدنيين بقصف على كفرنبل أمس\n</post>"
    )


def test_user_message_falls_back_to_scrape_time_and_unknown_channel():
    scraped = datetime.datetime(2025, 3, 16, 1, 0, tzinfo=datetime.UTC)
    report = sample_report(channel="", published_at=None, scraped_at=scraped)

    message = build_user_message(report)

    assert message.startswith("Channel: unknown\n")
    assert "Post date: 2025-03-16\n" in message
    assert report_date(report) == datetime.date(2025, 3, 16)
