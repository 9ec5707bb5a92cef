"""What the client sends and what it makes of the answers, over real HTTP."""

import datetime

import pytest

from reports.extraction import CACHE_TTL, APIUnavailable, extract_violations
from reports.models import Report
from reports.prompts import PROMPT_VERSION, SYSTEM_PROMPT
from tests.factories import shelling_item, tool_input

TEXT = (
    "عاجل | استشهاد 3 مدنيين وإصابة 5 آخرين جراء قصف مدفعي على أطراف كفرنبل صباح اليوم"
)
ITEM = shelling_item(incident_date="2025-03-15")


@pytest.fixture
def standin(claude_standin, settings):
    settings.CLAUDE_MAX_RETRIES = 0
    settings.CLAUDE_TIMEOUT_SECONDS = 5
    settings.CLAUDE_MODEL = "claude-sonnet-4-5"
    settings.CLAUDE_MAX_TOKENS = 3000
    claude_standin.record(TEXT, tool_input(ITEM))
    return claude_standin


@pytest.fixture
def report():
    return Report(
        text=TEXT,
        source_url="https://t.me/idlib_now/10412",
        channel="idlib_now",
        published_at=datetime.datetime(2025, 3, 15, 8, 0, tzinfo=datetime.UTC),
    )


def test_request_forces_the_strict_tool_and_caches_the_system_prompt(standin, report):
    extract_violations(report)

    request = standin.requests[0]
    assert request["model"] == "claude-sonnet-4-5"
    assert request["max_tokens"] == 3000
    assert request["tool_choice"] == {"type": "tool", "name": "record_violations"}
    [tool] = request["tools"]
    assert tool["name"] == "record_violations"
    assert tool["strict"] is True
    assert tool["input_schema"]["additionalProperties"] is False
    assert request["system"] == [
        {
            "type": "text",
            "text": SYSTEM_PROMPT,
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        }
    ]
    assert CACHE_TTL == "1h"


def test_request_carries_the_report_with_its_context(standin, report):
    extract_violations(report)

    [message] = standin.requests[0]["messages"]
    assert message["role"] == "user"
    assert message["content"] == (
        "Channel: idlib_now\n"
        "Source URL: https://t.me/idlib_now/10412\n"
        "Post date: 2025-03-15\n\n"
        f"<post>\n{TEXT}\n</post>"
    )


def test_request_has_the_configured_timeout_and_key(standin, report, settings):
    settings.CLAUDE_TIMEOUT_SECONDS = 7

    extract_violations(report)

    headers = standin.requests[0].headers
    assert float(headers["x-stainless-timeout"]) == 7.0
    # This SDK release sends the key as a bearer token, not as x-api-key.
    assert headers["authorization"] == f"Bearer {settings.ANTHROPIC_API_KEY}"


def test_later_calls_read_the_prompt_cache(standin, report):
    first = extract_violations(report)
    second = extract_violations(report)

    assert first.usage.cache_write_tokens > 1000
    assert first.usage.cache_read_tokens == 0
    assert second.usage.cache_write_tokens == 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.input_tokens < first.usage.cache_write_tokens


def test_result_carries_drafts_ids_usage_and_versions(standin, report):
    result = extract_violations(report)

    [draft] = result.drafts
    assert draft.violation_fields()["casualties"] == 3
    assert draft.violation_fields()["reported_date"] == datetime.date(2025, 3, 15)
    assert draft.flagged is False
    assert result.rejected == []
    assert result.response_id.startswith("msg_")
    assert result.stop_reason == "tool_use"
    assert result.prompt_version == PROMPT_VERSION
    assert result.model == "claude-sonnet-4-5"
    assert result.usage.output_tokens > 0
    assert result.calls == 1


def test_report_without_violations_returns_the_reason(standin, report):
    standin.queue_response(tool_input(reason="A political statement; no incident."))

    result = extract_violations(report)

    assert result.drafts == []
    assert result.rejected == []
    assert result.no_violation_reason == "A political statement; no incident."


def test_invalid_item_is_sent_back_once_and_corrected(standin, report):
    standin.queue_response(tool_input({**ITEM, "evidence": "استشهاد 4 مدنيين"}))

    result = extract_violations(report)

    assert result.calls == 2
    assert len(result.drafts) == 1
    assert result.first_errors == [
        "violations[0].evidence: the quote 'استشهاد 4 مدنيين' does not occur "
        "in the report."
    ]
    first, second = standin.requests
    user, assistant, correction = second["messages"]
    assert user == first["messages"][0]
    assert assistant["role"] == "assistant"
    [tool_use] = assistant["content"]
    assert tool_use["type"] == "tool_use"
    assert tool_use["input"]["violations"][0]["evidence"] == "استشهاد 4 مدنيين"
    [tool_result] = correction["content"]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == tool_use["id"]
    assert tool_result["is_error"] is True
    assert "- violations[0].evidence: the quote" in tool_result["content"]


def test_usage_covers_both_calls(standin, report):
    standin.queue_response(tool_input({**ITEM, "certainty": "certain"}))

    result = extract_violations(report)

    assert result.calls == 2
    assert result.usage.cache_write_tokens > 0
    assert result.usage.cache_read_tokens == result.usage.cache_write_tokens
    assert result.usage.input_tokens > 0


def test_second_failure_is_final_and_rejects_the_items(standin, report):
    bad = {**ITEM, "violation_type": "DETENTION"}
    standin.queue_response(tool_input(bad, ITEM))
    standin.queue_response(tool_input(bad, ITEM))

    result = extract_violations(report)

    assert result.calls == 2
    assert len(standin.requests) == 2
    assert len(result.drafts) == 1
    assert result.rejected == [
        {
            "index": 0,
            "errors": [
                "detained: A detention must have detained people (more than 0)."
            ],
            "item": bad,
        }
    ]


def test_every_item_rejected_leaves_no_drafts(standin, report):
    standin.queue_response(tool_input({**ITEM, "incident_date": "2010-01-01"}))
    standin.queue_response(tool_input({**ITEM, "incident_date": "2010-01-01"}))

    result = extract_violations(report)

    assert result.drafts == []
    assert result.rejected[0]["errors"] == [
        "incident_date: 2010-01-01 is before the documented period, which starts "
        "on 2011-03-01."
    ]


def test_ungrounded_figure_comes_back_flagged_without_a_second_call(standin, report):
    standin.queue_response(tool_input({**ITEM, "casualties": 30}))

    result = extract_violations(report)

    assert result.calls == 1
    [draft] = result.drafts
    assert draft.violation_fields()["flagged"] is True
    assert draft.violation_fields()["flag_reasons"] == [
        "casualties: the figure 30 does not appear in the report."
    ]


def test_correction_gets_the_rest_of_the_budget_without_retries(
    standin, report, settings
):
    settings.CLAUDE_MAX_RETRIES = 2
    standin.queue_response(tool_input({**ITEM, "certainty": "certain"}))
    standin.queue_fault("server_error")

    with pytest.raises(APIUnavailable):
        extract_violations(report)

    assert [request.status for request in standin.requests] == [200, 500]


def test_correction_timeout_is_what_is_left_of_one_call(standin, report, settings):
    standin.queue_response(tool_input({**ITEM, "certainty": "certain"}))

    extract_violations(report)

    first, second = (float(r.headers["x-stainless-timeout"]) for r in standin.requests)
    assert first == 5.0
    # What is left of the first call's budget; under a quarter, no correction.
    assert 1.25 <= second < 5.0


def test_no_correction_when_too_little_time_is_left(standin, report, settings):
    settings.CLAUDE_TIMEOUT_SECONDS = 2
    standin.latency = 1.6
    standin.queue_response(tool_input({**ITEM, "certainty": "certain"}))

    result = extract_violations(report)

    assert len(standin.requests) == 1
    assert result.calls == 1
    assert result.drafts == []
    assert result.rejected[0]["errors"] == [
        "certainty: Input should be 'possible', 'probable' or 'confirmed'."
    ]
