"""Every failure of a Claude call, served by the stand-in over real HTTP."""

import datetime
import email.utils
import logging
import socket

import httpx2
import pytest

from reports.extraction import (
    APIUnavailable,
    AuthenticationFailed,
    BadRequest,
    ConfigurationError,
    ExtractionError,
    InvalidOutput,
    ModelNotFound,
    Overloaded,
    RateLimited,
    SpendLimitReached,
    extract_violations,
    parse_retry_after,
)
from reports.models import Report
from tests.factories import shelling_item, tool_input

KEY = "sk-ant-api03-secret-test-key-0123456789"
TEXT = "عاجل | استشهاد 3 مدنيين وإصابة 5 آخرين جراء قصف مدفعي على أطراف كفرنبل"
RECORDED = tool_input(shelling_item(tags=[]))


@pytest.fixture
def standin(claude_standin, settings):
    settings.ANTHROPIC_API_KEY = KEY
    settings.CLAUDE_MAX_RETRIES = 0
    settings.CLAUDE_TIMEOUT_SECONDS = 5
    claude_standin.record(TEXT, RECORDED)
    return claude_standin


@pytest.fixture
def report():
    published = datetime.datetime(2025, 3, 15, 8, 0, tzinfo=datetime.UTC)
    return Report(
        text=TEXT,
        source_url="https://t.me/idlib_now/1",
        channel="idlib_now",
        published_at=published,
    )


def failure(report) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract_violations(report)
    return caught.value


def test_rate_limit_carries_the_servers_retry_after(standin, report):
    standin.queue_fault("rate_limited", retry_after=7)

    error = failure(report)

    assert type(error) is RateLimited
    assert error.category == Report.ErrorCategory.RATE_LIMITED
    assert error.retry_after == 7.0
    assert error.retryable is True
    assert error.stops_batch is False
    assert str(error).startswith(
        "Rate limited, retry after 7 s: HTTP 429 Number of request tokens has "
        "exceeded your per-minute rate limit. (request req_"
    )


def test_rate_limit_is_not_slept_out_inside_the_call(standin, report, settings):
    # The SDK would wait the retry-after (here an hour) before retrying.
    settings.CLAUDE_MAX_RETRIES = 2
    standin.queue_fault("rate_limited", retry_after=3600)

    error = failure(report)

    assert type(error) is RateLimited
    assert error.retry_after == 3600.0
    assert len(standin.requests) == 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "2500", "retry-after": "9"}, 2.5),
        ({}, None),
        ({"retry-after": "soon"}, None),
    ],
)
def test_retry_after_header_forms(headers, seconds):
    assert parse_retry_after(httpx2.Headers(headers)) == seconds


def test_retry_after_as_a_date():
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=90)
    headers = httpx2.Headers({"retry-after": email.utils.format_datetime(later)})

    assert 85 <= parse_retry_after(headers) <= 90


def test_spend_limit_stops_the_batch(standin, report):
    standin.queue_fault("spend_limit")

    error = failure(report)

    assert type(error) is SpendLimitReached
    assert error.category == Report.ErrorCategory.SPEND_LIMIT
    assert error.stops_batch is True
    assert error.retryable is False
    assert error.retry_after is None
    assert "You have reached your specified API usage limits." in str(error)


def test_overloaded_is_its_own_category(standin, report):
    standin.queue_fault("overloaded")

    error = failure(report)

    assert type(error) is Overloaded
    assert error.category == Report.ErrorCategory.OVERLOADED
    assert error.retryable is True
    assert error.stops_batch is False


def test_overloaded_once_is_retried_by_the_client(standin, report, settings):
    settings.CLAUDE_MAX_RETRIES = 1
    standin.queue_fault("overloaded")

    result = extract_violations(report)

    assert len(result.drafts) == 1
    assert [request.status for request in standin.requests] == [529, 200]


def test_server_error_is_an_api_error(standin, report):
    standin.queue_fault("server_error")

    error = failure(report)

    assert type(error) is APIUnavailable
    assert error.category == Report.ErrorCategory.API_ERROR
    assert error.retryable is True
    assert str(error).startswith("The API failed: HTTP 500 Internal server error")


def test_timeout_is_an_api_error(standin, report, settings):
    settings.CLAUDE_TIMEOUT_SECONDS = 0.2
    standin.queue_fault("timeout", seconds=0.6)

    error = failure(report)

    assert type(error) is APIUnavailable
    assert error.category == Report.ErrorCategory.API_ERROR
    assert str(error) == "No answer within 0.2 s."


def test_connection_refused_is_an_api_error(report, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.ANTHROPIC_BASE_URL = f"http://127.0.0.1:{port}"
    settings.ANTHROPIC_API_KEY = KEY
    settings.CLAUDE_MAX_RETRIES = 0

    error = failure(report)

    assert type(error) is APIUnavailable
    assert str(error).startswith("Could not reach the API: ")


@pytest.mark.parametrize("kind", ["auth", "permission"])
def test_refused_key_stops_the_batch(standin, report, kind):
    standin.queue_fault(kind)

    error = failure(report)

    assert type(error) is AuthenticationFailed
    assert error.category == Report.ErrorCategory.AUTH
    assert error.stops_batch is True
    assert error.retryable is False


def test_bad_request_is_not_retried(standin, report, settings):
    settings.CLAUDE_MAX_RETRIES = 2
    standin.queue_fault("bad_request")

    error = failure(report)

    assert type(error) is BadRequest
    assert error.category == Report.ErrorCategory.BAD_REQUEST
    assert error.retryable is False
    assert error.stops_batch is False
    assert "prompt is too long: 212345 tokens > 200000 maximum" in str(error)
    assert len(standin.requests) == 1


def test_unknown_model_or_address_stops_the_batch(standin, report, settings):
    settings.CLAUDE_MODEL = "claude-sonnet-4-5"
    settings.ANTHROPIC_BASE_URL = f"{standin.base_url}/wrong"

    error = failure(report)

    assert type(error) is ModelNotFound
    assert error.category == Report.ErrorCategory.BAD_REQUEST
    assert error.stops_batch is True
    assert str(error).startswith(
        "Not found; is CLAUDE_MODEL 'claude-sonnet-4-5' right? HTTP 404 Not found"
    )


def test_answer_without_the_tool_call_is_invalid_output(standin, report):
    standin.queue_fault("no_tool")

    error = failure(report)

    assert type(error) is InvalidOutput
    assert error.category == Report.ErrorCategory.INVALID_OUTPUT
    assert error.retryable is True
    assert str(error).startswith(
        "The answer has no record_violations call (stop reason end_turn): "
        "'I read the report."
    )


def test_cut_off_answer_is_invalid_output(standin, report, settings):
    settings.CLAUDE_MAX_TOKENS = 512
    standin.queue_fault("max_tokens")

    error = failure(report)

    assert type(error) is InvalidOutput
    assert error.retryable is False
    assert str(error) == (
        "The answer was cut off at 512 output tokens (CLAUDE_MAX_TOKENS); the "
        "same report would be cut off again."
    )


def test_refusal_is_invalid_output(standin, report):
    standin.queue_fault("refusal")

    error = failure(report)

    assert type(error) is InvalidOutput
    assert error.retryable is False
    assert str(error) == "Claude declined to answer: I can't help with that request."


def test_malformed_twice_is_final(standin, report):
    standin.queue_fault("malformed", times=2)

    error = failure(report)

    assert type(error) is InvalidOutput
    assert str(error) == (
        "The corrected answer is still malformed: violations must be a list of "
        "objects, not str."
    )
    assert len(standin.requests) == 2


def test_malformed_once_is_corrected_by_the_second_answer(standin, report):
    standin.queue_fault("malformed")

    result = extract_violations(report)

    assert len(result.drafts) == 1
    assert result.calls == 2
    assert result.first_errors == ["violations must be a list of objects, not str."]


def test_missing_key_fails_before_any_request(standin, report, settings):
    settings.ANTHROPIC_API_KEY = ""

    error = failure(report)

    assert type(error) is ConfigurationError
    assert error.category == Report.ErrorCategory.AUTH
    assert error.stops_batch is True
    assert standin.requests == []


FAULTS = [
    "rate_limited",
    "spend_limit",
    "overloaded",
    "server_error",
    "auth",
    "permission",
    "bad_request",
    "no_tool",
    "refusal",
]


def test_key_never_appears_in_errors_or_logs(standin, report, caplog):
    # An error body that echoes the key, as a misconfigured proxy might.
    standin.queue_fault("bad_request", message=f"invalid key {KEY} in header")
    for kind in FAULTS:
        standin.queue_fault(kind)
    caplog.set_level(logging.DEBUG)

    messages = [str(failure(report)) for _ in range(len(FAULTS) + 1)]
    extract_violations(report)

    assert "invalid key [redacted] in header" in messages[0]
    assert len(caplog.records) > 10
    for text in [*messages, caplog.text]:
        assert KEY not in text
        assert KEY[8:] not in text


def test_anything_shaped_like_a_key_is_scrubbed(settings):
    settings.ANTHROPIC_API_KEY = "short"

    error = BadRequest("rejected sk-ant-admin01-Zx_9-q for short")

    assert str(error) == "rejected [redacted] for short"
