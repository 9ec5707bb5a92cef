"""The Messages API stand-in, driven by the real SDK over real HTTP."""

import json
import threading
import time
import urllib.error
import urllib.request

import anthropic
import pytest

from reports.standin import (
    NO_RECORDING_REASON,
    MessagesStandIn,
    load_sample_reports,
    sample_recordings,
)
from tests.conftest import STANDIN_API_KEY

TOOL = {
    "name": "record_violations",
    "description": "Record the violations the report describes.",
    "strict": True,
    "input_schema": {
        "type": "object",
        "properties": {
            "violations": {"type": "array", "items": {"type": "object"}},
            "no_violation_reason": {"type": "string"},
        },
        "required": ["violations", "no_violation_reason"],
        "additionalProperties": False,
    },
}
EPHEMERAL = {"type": "ephemeral"}
LONG_SYSTEM = "Extract every violation the report describes. " * 120


def client(standin, **options):
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 5)
    return anthropic.Anthropic(
        base_url=standin.base_url, api_key=STANDIN_API_KEY, **options
    )


def ask(standin, text, *, system="Extract violations.", messages=None, **options):
    return client(standin, **options).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        system=[
            {"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}
        ],
        tools=[TOOL],
        tool_choice={"type": "tool", "name": "record_violations"},
        messages=messages or [{"role": "user", "content": f"Report:\n{text}"}],
    )


def sample(index=0):
    report = load_sample_reports()[index]
    return report["text"], sample_recordings()[report["text"]]


def test_recorded_extraction_is_answered_as_a_tool_call(claude_standin):
    text, recording = sample()

    message = ask(claude_standin, f"Channel: x\n\n  {text}  ")

    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == "claude-sonnet-4-5"
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use"
    assert block.name == "record_violations"
    assert block.id.startswith("toolu_")
    assert block.input == recording
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0


def test_report_text_is_found_despite_spacing_and_spelling_variants(claude_standin):
    text, recording = sample()
    variant = " ".join(text.split()).replace("إدلب", "ادلب")

    message = ask(claude_standin, variant)

    assert message.content[0].input == recording


def test_unknown_report_gets_an_empty_violation_list(claude_standin):
    message = ask(claude_standin, "Weather in Damascus: sunny, 24 degrees.")

    assert message.content[0].input == {
        "violations": [],
        "no_violation_reason": NO_RECORDING_REASON,
    }


def test_reask_after_a_validation_error_gets_the_recording_again(claude_standin):
    text, recording = sample()
    first = ask(claude_standin, text)
    messages = [
        {"role": "user", "content": f"Report:\n{text}"},
        {"role": "assistant", "content": [block.to_dict() for block in first.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": first.content[0].id,
                    "is_error": True,
                    "content": "violations.0.casualties: not in the report",
                }
            ],
        },
    ]

    second = ask(claude_standin, text, messages=messages)

    assert second.content[0].input == recording
    assert len(claude_standin.requests) == 2


def test_queued_response_is_served_once_before_the_recording(claude_standin):
    text, recording = sample()
    claude_standin.queue_response({"violations": [], "no_violation_reason": "test"})

    first = ask(claude_standin, text)
    second = ask(claude_standin, text)

    assert first.content[0].input == {"violations": [], "no_violation_reason": "test"}
    assert second.content[0].input == recording
    assert claude_standin.pending == 0


def test_recorded_text_can_be_added_for_one_test(claude_standin):
    claude_standin.record("A custom report text.", {"violations": [{"x": 1}]})

    message = ask(claude_standin, "Report: a custom report text!")

    assert message.content[0].input == {"violations": [{"x": 1}]}


def test_requests_are_recorded_with_body_and_headers(claude_standin):
    text, _ = sample()

    ask(claude_standin, text)

    [request] = claude_standin.requests
    assert request["model"] == "claude-sonnet-4-5"
    assert request["tools"][0]["name"] == "record_violations"
    assert request["tools"][0]["strict"] is True
    assert request["tool_choice"] == {"type": "tool", "name": "record_violations"}
    assert request["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert request.api_key == STANDIN_API_KEY
    assert request.headers["anthropic-version"]
    assert request.status == 200
    assert request.fault is None


def test_request_without_api_key_is_refused_with_401(claude_standin):
    request = urllib.request.Request(
        f"{claude_standin.base_url}/v1/messages",
        data=json.dumps({"model": "m", "max_tokens": 1, "messages": []}).encode(),
        headers={"anthropic-version": "2023-06-01", "content-type": "application/json"},
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    request_id = caught.value.headers["request-id"]
    assert caught.value.code == 401
    assert request_id.startswith("req_")
    assert json.loads(caught.value.read()) == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        },
        "request_id": request_id,
    }


def test_unknown_path_is_not_found(claude_standin):
    request = urllib.request.Request(f"{claude_standin.base_url}/v1/models")

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 404


@pytest.mark.parametrize(
    ("kind", "error_class", "status", "error_type"),
    [
        ("rate_limited", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("spend_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
        ("server_error", anthropic.InternalServerError, 500, "api_error"),
        ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
        ("permission", anthropic.PermissionDeniedError, 403, "permission_error"),
        ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
    ],
)
def test_error_faults_raise_the_sdk_error_class(
    claude_standin, kind, error_class, status, error_type
):
    claude_standin.queue_fault(kind)

    with pytest.raises(error_class) as caught:
        ask(claude_standin, sample()[0])

    error = caught.value
    assert error.status_code == status
    assert error.body["type"] == "error"
    assert error.body["error"]["type"] == error_type
    assert error.request_id.startswith("req_")
    assert claude_standin.requests[0].fault == kind
    assert claude_standin.requests[0].status == status


def test_rate_limit_carries_retry_after_and_spend_limit_does_not(claude_standin):
    claude_standin.queue_fault("rate_limited", retry_after=7)
    claude_standin.queue_fault("spend_limit")

    with pytest.raises(anthropic.RateLimitError) as rate_limited:
        ask(claude_standin, "x")
    with pytest.raises(anthropic.RateLimitError) as spend_limit:
        ask(claude_standin, "x")

    assert rate_limited.value.response.headers["retry-after"] == "7"
    assert "retry-after" not in spend_limit.value.response.headers
    assert spend_limit.value.body["error"]["message"].startswith(
        "You have reached your specified API usage limits."
    )


def test_sdk_retry_honours_retry_after_then_gets_the_answer(claude_standin):
    text, recording = sample()
    claude_standin.queue_fault("rate_limited", retry_after=0.01)

    message = ask(claude_standin, text, max_retries=1)

    assert message.content[0].input == recording
    first, second = claude_standin.requests
    assert (first.status, second.status) == (429, 200)
    assert second.headers["x-stainless-retry-count"] == "1"


def test_faults_are_served_in_order_then_normal_answers_resume(claude_standin):
    claude_standin.queue_fault("overloaded", times=2)
    claude_standin.queue_fault("server_error")

    for error_class in (anthropic.OverloadedError,) * 2 + (
        anthropic.InternalServerError,
    ):
        with pytest.raises(error_class):
            ask(claude_standin, "x")
    message = ask(claude_standin, "x")

    assert message.stop_reason == "tool_use"
    assert [r.status for r in claude_standin.requests] == [529, 529, 500, 200]


def test_timeout_fault_outlasts_the_client_timeout(claude_standin):
    claude_standin.queue_fault("timeout")
    started = time.monotonic()

    with pytest.raises(anthropic.APITimeoutError):
        ask(claude_standin, "x", timeout=0.2)

    assert time.monotonic() - started < 1.0


def test_stop_ends_a_request_held_by_a_timeout_fault():
    standin = MessagesStandIn().start()
    standin.queue_fault("timeout", seconds=60)
    errors = []

    def call():
        try:
            ask(standin, "x", timeout=30)
        except anthropic.APIError as error:
            errors.append(error)

    caller = threading.Thread(target=call)
    caller.start()
    while not standin.requests:
        time.sleep(0.005)
    started = time.monotonic()
    standin.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert time.monotonic() - started < 2.0


def test_malformed_fault_sends_input_that_breaks_the_schema(claude_standin):
    claude_standin.queue_fault("malformed")

    message = ask(claude_standin, sample()[0])

    tool_input = message.content[0].input
    assert message.stop_reason == "tool_use"
    assert isinstance(tool_input["violations"], str)
    assert "no_violation_reason" not in tool_input


def test_no_tool_fault_answers_with_text_only(claude_standin):
    claude_standin.queue_fault("no_tool", text="Here is a summary.")

    message = ask(claude_standin, "x")

    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Here is a summary."


def test_max_tokens_fault_cuts_the_tool_input_short(claude_standin):
    text, recording = sample()
    claude_standin.queue_fault("max_tokens")

    message = ask(claude_standin, text)

    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 1024
    [item] = message.content[0].input["violations"]
    assert set(item) < set(recording["violations"][0])
    assert "no_violation_reason" not in message.content[0].input


def test_refusal_fault_stops_with_refusal(claude_standin):
    claude_standin.queue_fault("refusal")

    message = ask(claude_standin, "x")

    assert message.stop_reason == "refusal"
    assert message.content[0].type == "text"


def test_unknown_fault_kind_is_refused(claude_standin):
    with pytest.raises(ValueError, match="Unknown fault 'teapot'"):
        claude_standin.queue_fault("teapot")


def test_cached_system_prompt_is_written_once_then_read(claude_standin):
    first = ask(claude_standin, "x", system=LONG_SYSTEM)
    second = ask(claude_standin, "y", system=LONG_SYSTEM)

    assert first.usage.cache_creation_input_tokens > 1024
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_creation_input_tokens == 0
    assert (
        second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    )
    assert second.usage.input_tokens < first.usage.cache_creation_input_tokens


def test_one_hour_cache_is_reported_as_such(claude_standin):
    message = client(claude_standin).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system=[
            {
                "type": "text",
                "text": LONG_SYSTEM,
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            }
        ],
        messages=[{"role": "user", "content": "x"}],
    )

    creation = message.usage.cache_creation
    assert creation.ephemeral_1h_input_tokens == (
        message.usage.cache_creation_input_tokens
    )
    assert creation.ephemeral_5m_input_tokens == 0


def test_short_or_unmarked_system_prompt_is_not_cached(claude_standin):
    short = ask(claude_standin, "x", system="Short prompt.")
    unmarked = client(claude_standin).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=100,
        system=LONG_SYSTEM,
        messages=[{"role": "user", "content": "x"}],
    )

    for message in (short, unmarked):
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0


def test_latency_delays_each_answer(claude_standin):
    claude_standin.latency = lambda: 0.05
    started = time.monotonic()

    ask(claude_standin, "x")

    assert time.monotonic() - started >= 0.05


def test_concurrent_requests_are_counted(claude_standin):
    arrived = threading.Barrier(3, timeout=5)

    def no_answer_until_all_three_arrived():
        arrived.wait()
        return 0

    claude_standin.latency = no_answer_until_all_three_arrived
    callers = [threading.Thread(target=ask, args=(claude_standin, "x")) for _ in "abc"]

    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()

    assert claude_standin.max_in_flight == 3
    assert len(claude_standin.requests) == 3


def test_json_schema_output_format_is_answered_as_text(claude_standin):
    text, recording = sample()
    schema = TOOL["input_schema"]

    message = client(claude_standin).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=1024,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=[{"role": "user", "content": text}],
    )

    assert json.loads(message.content[0].text) == recording


def test_fixture_points_settings_at_the_standin(claude_standin, settings):
    assert claude_standin.base_url == settings.ANTHROPIC_BASE_URL
    assert settings.ANTHROPIC_API_KEY == "sk-ant-test-standin-key"
    assert claude_standin.base_url.startswith("http://127.0.0.1:")


def test_context_manager_starts_and_stops():
    with MessagesStandIn() as standin:
        message = ask(standin, "x")

    assert message.stop_reason == "tool_use"
    with pytest.raises(RuntimeError, match="not running"):
        _ = standin.base_url


def test_targeted_fault_waits_for_its_report_text(claude_standin):
    text, recording = sample()
    claude_standin.queue_fault("overloaded", report_text=text)
    claude_standin.queue_response({"violations": [{"x": 1}]}, report_text="other one")

    unrelated = ask(claude_standin, "An unrelated report.")
    with pytest.raises(anthropic.OverloadedError):
        ask(claude_standin, text)
    answer = ask(claude_standin, "Report: the OTHER one.")

    assert unrelated.content[0].input["violations"] == []
    assert answer.content[0].input == {"violations": [{"x": 1}]}
    assert ask(claude_standin, text).content[0].input == recording
    assert claude_standin.pending == 0


def test_stopped_standin_answers_nothing_on_a_kept_alive_connection():
    standin = MessagesStandIn().start()
    sdk = client(standin)
    sdk.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=10,
        messages=[{"role": "user", "content": "x"}],
    )

    standin.stop()

    with pytest.raises(anthropic.APIConnectionError):
        sdk.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
        )
    assert len(standin.requests) == 1


def test_request_the_api_would_refuse_gets_400(claude_standin):
    request = urllib.request.Request(
        f"{claude_standin.base_url}/v1/messages",
        data=json.dumps({"model": "m", "max_tokens": 1, "messages": "hi"}).encode(),
        headers={"anthropic-version": "2023-06-01", "x-api-key": STANDIN_API_KEY},
    )

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)

    assert caught.value.code == 400
    assert json.loads(caught.value.read())["error"] == {
        "type": "invalid_request_error",
        "message": "messages: Input should be a valid list",
    }


def test_a_failing_latency_hook_is_a_server_error(claude_standin):
    claude_standin.latency = lambda: 1 / 0

    with pytest.raises(anthropic.InternalServerError) as caught:
        ask(claude_standin, "x")

    assert caught.value.body["error"]["message"] == "The stand-in failed to answer."
