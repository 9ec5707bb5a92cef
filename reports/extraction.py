"""The Claude client: one report's text in, validated violation drafts out.

Follows the Messages API (https://platform.claude.com/docs/en/api/messages),
its errors (https://platform.claude.com/docs/en/api/errors), strict tool use
(https://platform.claude.com/docs/en/agents-and-tools/tool-use/strict-tool-use)
and prompt caching
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching).

Claude must answer by calling the one ``record_violations`` tool, whose input
schema the API enforces, so nothing is parsed out of prose. Items are then
validated one by one (``violations.schema``). When the answer fails
validation, the errors go back to Claude once, in the same conversation; the
second answer is final.

Every failure is raised as an ``ExtractionError`` whose ``category`` is the
``Report.ErrorCategory`` the caller stores, and whose message never contains
the API key.
"""

import datetime
import email.utils
import functools
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import anthropic
from django.conf import settings
from django.utils import timezone

from violations.schema import ViolationDraft, validate_items

from .models import Report
from .prompts import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    TOOL_NAME,
    build_user_message,
    record_violations_tool,
    report_date,
)

logger = logging.getLogger(__name__)

Category = Report.ErrorCategory

# Batches run every 10 minutes, longer than the default 5-minute cache life,
# so with "5m" the first call of every batch would write the cache again. The
# 1-hour cache costs more to write (2x input price instead of 1.25x) but is
# written once an hour and read by every call in between.
CACHE_TTL = "1h"

# The API's wording when an organisation's spend limit, not its rate, is hit.
_SPEND_LIMIT_WORDS = re.compile(
    r"spend limit|usage limit|credit balance|billing", re.IGNORECASE
)
_KEY_PATTERN = re.compile(r"sk-ant-[A-Za-z0-9_\-]+")
_RETRY_LATER_STATUSES = {408, 409}


class ExtractionError(Exception):
    """A failed extraction, with what the caller should do about it.

    ``retryable``: a later attempt may succeed. ``stops_batch``: nothing else
    in the batch can succeed either (bad key, spend limit). ``retry_after``:
    seconds the API asked to wait (rate limits only).
    """

    category: str = Category.API_ERROR
    retryable: bool = True
    stops_batch: bool = False

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(scrub(message))
        self.retry_after = retry_after
        # Tokens of the answers received before the failure (an answer that
        # was cut off or refused is still billed); set by extract_violations.
        self.usage: Usage | None = None


class ConfigurationError(ExtractionError):
    category = Category.AUTH
    retryable = False
    stops_batch = True


class RateLimited(ExtractionError):
    category = Category.RATE_LIMITED


class SpendLimitReached(ExtractionError):
    category = Category.SPEND_LIMIT
    retryable = False
    stops_batch = True


class Overloaded(ExtractionError):
    category = Category.OVERLOADED


class APIUnavailable(ExtractionError):
    category = Category.API_ERROR


class AuthenticationFailed(ExtractionError):
    category = Category.AUTH
    retryable = False
    stops_batch = True


class BadRequest(ExtractionError):
    category = Category.BAD_REQUEST
    retryable = False


class ModelNotFound(BadRequest):
    """The configured model does not exist: every report would fail the same way."""

    stops_batch = True


class InvalidOutput(ExtractionError):
    category = Category.INVALID_OUTPUT

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    def add(self, usage: Any) -> None:
        """Adds the usage of one API response."""
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.cache_read_tokens += usage.cache_read_input_tokens or 0
        self.cache_write_tokens += usage.cache_creation_input_tokens or 0


@dataclass
class ExtractionResult:
    """What Claude found in one report, validated.

    ``rejected`` items are ``{"index", "errors", "item"}``; when every item
    was rejected the caller fails the report with category ``validation``.
    ``calls`` is 2 when the answer was sent back once for correction; ``usage``
    covers both calls.
    """

    drafts: list[ViolationDraft]
    rejected: list[dict[str, Any]]
    response_id: str
    usage: Usage
    stop_reason: str
    prompt_version: str
    model: str
    no_violation_reason: str = ""
    calls: int = 1
    first_errors: list[str] = field(default_factory=list)


def extract_violations(report: Report) -> ExtractionResult:
    """Asks Claude for the violations in ``report`` and validates them.

    Raises an ``ExtractionError`` subclass on any failure; a missing API key
    raises ``ConfigurationError`` before any request. Touches no database.
    Takes no longer than one call with all its retries
    (CLAUDE_TIMEOUT_SECONDS x (CLAUDE_MAX_RETRIES + 1)), the worst case the
    batch's call slots and the stuck-report timeout are sized for.
    """
    conversation = _Conversation(get_client(), report)
    conversation.messages.append(
        {"role": "user", "content": build_user_message(report)}
    )

    try:
        response, tool_use = conversation.ask()
        outcome = _validate(tool_use.input, report)
        first_errors = outcome.errors
        if first_errors:
            response, outcome = _ask_to_correct(
                conversation, response, tool_use, outcome
            )
    except ExtractionError as error:
        error.usage = conversation.usage
        raise

    result = ExtractionResult(
        drafts=outcome.drafts,
        rejected=outcome.rejected,
        response_id=response.id,
        usage=conversation.usage,
        stop_reason=response.stop_reason or "",
        prompt_version=PROMPT_VERSION,
        model=response.model or settings.CLAUDE_MODEL,
        no_violation_reason=outcome.no_violation_reason,
        calls=conversation.calls,
        first_errors=first_errors,
    )
    _log_result(report, result, seconds=conversation.elapsed)
    return result


def _ask_to_correct(
    conversation: "_Conversation", response: Any, tool_use: Any, outcome: "_Outcome"
) -> tuple[Any, "_Outcome"]:
    """Sends the errors back once; the answer to that is final.

    The correction gets what is left of the one-call budget, without retries;
    with too little left, the first answer stands as it is.
    """
    report = conversation.report
    remaining = conversation.remaining
    if remaining < settings.CLAUDE_TIMEOUT_SECONDS / 4:
        logger.warning(
            "report %s: answer failed validation, %.1f s left is too little "
            "to ask again",
            report.pk,
            remaining,
        )
        if outcome.envelope_error:
            raise InvalidOutput(f"The answer is malformed: {outcome.envelope_error}")
        return response, outcome

    logger.info(
        "report %s: answer failed validation (%d errors), asking once more",
        report.pk,
        len(outcome.errors),
    )
    conversation.messages += _correction_turn(response, tool_use, outcome.errors)
    response, tool_use = conversation.ask(
        timeout=min(settings.CLAUDE_TIMEOUT_SECONDS, remaining), retries=False
    )
    outcome = _validate(tool_use.input, report)
    if outcome.envelope_error:
        raise InvalidOutput(
            f"The corrected answer is still malformed: {outcome.envelope_error}"
        )
    return response, outcome


def _log_result(report: Report, result: ExtractionResult, *, seconds: float) -> None:
    usage = result.usage
    logger.info(
        "report %s extracted: %d drafts, %d rejected, %d calls in %.1f s "
        "(tokens: %d in, %d out, %d cache read, %d cache write)",
        report.pk,
        len(result.drafts),
        len(result.rejected),
        result.calls,
        seconds,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
    )


# --- the client -------------------------------------------------------------


def get_client() -> anthropic.Anthropic:
    """A client for the configured key, address, timeout and retries."""
    key = settings.ANTHROPIC_API_KEY
    if not key:
        raise ConfigurationError(
            "ANTHROPIC_API_KEY is not set; no report can be processed without it."
        )
    return _client(
        key,
        settings.ANTHROPIC_BASE_URL or None,
        float(settings.CLAUDE_TIMEOUT_SECONDS),
        int(settings.CLAUDE_MAX_RETRIES),
    )


@functools.lru_cache(maxsize=4)
def _client(
    key: str, base_url: str | None, timeout: float, max_retries: int
) -> anthropic.Anthropic:
    # One client per configuration, shared by threads: it keeps a connection
    # pool. The SDK's default (600 s, 2 retries) could outlast the stuck-report
    # timeout; settings refuse a timeout x tries that does.
    return anthropic.Anthropic(
        api_key=key,
        base_url=base_url,
        timeout=timeout,
        max_retries=max_retries,
        middleware=[_rate_limits_are_not_retried],
    )


def _rate_limits_are_not_retried(request: Any, call_next: Any) -> Any:
    """Stops the SDK from sleeping out a 429 inside the call.

    The SDK waits whatever retry-after the server asks, with no ceiling, which
    could hold a worker past the stuck-report timeout. A 429 goes straight to
    the batch instead, which defers the report and slows down for everyone.
    """
    response = call_next(request)
    if response.http_response.status_code == 429:
        response.http_response.headers["x-should-retry"] = "false"
    return response


class _Conversation:
    """One report's exchange with Claude: messages, calls, tokens and time."""

    def __init__(self, client: anthropic.Anthropic, report: Report) -> None:
        self.client = client
        self.report = report
        self.messages: list[dict[str, Any]] = []
        self.usage = Usage()
        self.calls = 0
        self.started = time.monotonic()
        self.budget = settings.CLAUDE_TIMEOUT_SECONDS * (
            settings.CLAUDE_MAX_RETRIES + 1
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def remaining(self) -> float:
        return self.budget - self.elapsed

    def ask(
        self, *, timeout: float | None = None, retries: bool = True
    ) -> tuple[Any, Any]:
        """One call: the response and its tool call; tokens added to ``usage``."""
        client = self.client if retries else self.client.with_options(max_retries=0)
        response = _call(
            client,
            messages=self.messages,
            timeout=timeout or settings.CLAUDE_TIMEOUT_SECONDS,
        )
        self.calls += 1
        self.usage.add(response.usage)
        _check_stop_reason(response)
        return response, _tool_use(response)


def _call(client: anthropic.Anthropic, *, messages: list, timeout: float) -> Any:
    """One Messages API call, SDK errors turned into ``ExtractionError``."""
    system = [
        {
            "type": "text",
            "text": SYSTEM_PROMPT,
            # The tools and this system block form the cached prefix.
            "cache_control": {"type": "ephemeral", "ttl": CACHE_TTL},
        }
    ]
    try:
        response = client.messages.create(
            model=settings.CLAUDE_MODEL,
            max_tokens=settings.CLAUDE_MAX_TOKENS,
            system=system,
            tools=[record_violations_tool()],
            tool_choice={"type": "tool", "name": TOOL_NAME},
            messages=messages,
            timeout=float(timeout),
        )
    except anthropic.APIError as exc:
        raise error_from_sdk(exc) from None
    return response


def _check_stop_reason(response: Any) -> None:
    if response.stop_reason == "model_context_window_exceeded":
        raise InvalidOutput(
            "The answer was cut off at the model's context window.", retryable=False
        )
    if response.stop_reason == "max_tokens":
        raise InvalidOutput(
            f"The answer was cut off at {settings.CLAUDE_MAX_TOKENS} output tokens "
            "(CLAUDE_MAX_TOKENS); the same report would be cut off again.",
            retryable=False,
        )
    if response.stop_reason == "refusal":
        raise InvalidOutput(
            f"Claude declined to answer: {_text_of(response)[:300]}", retryable=False
        )


def _tool_use(response: Any) -> Any:
    for block in response.content:
        if block.type == "tool_use" and block.name == TOOL_NAME:
            return block
    raise InvalidOutput(
        f"The answer has no {TOOL_NAME} call (stop reason "
        f"{response.stop_reason}): {_text_of(response)[:300]!r}"
    )


def _text_of(response: Any) -> str:
    return " ".join(
        block.text for block in response.content if block.type == "text"
    ).strip()


def _correction_turn(response: Any, tool_use: Any, errors: list[str]) -> list[dict]:
    """The assistant's answer and a user turn returning its errors to it."""
    feedback = (
        "The input failed validation. Call record_violations again with the "
        "complete, corrected list; change only what the errors name, and drop "
        "an item the post does not support.\n" + "\n".join(f"- {e}" for e in errors)
    )
    return [
        {"role": "assistant", "content": [_block_param(b) for b in response.content]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use.id,
                    "is_error": True,
                    "content": feedback,
                }
            ],
        },
    ]


def _block_param(block: Any) -> dict[str, Any]:
    if block.type == "tool_use":
        return {
            "type": "tool_use",
            "id": block.id,
            "name": block.name,
            "input": block.input,
        }
    return {"type": "text", "text": block.text}


# --- validation ---------------------------------------------------------------


@dataclass
class _Outcome:
    drafts: list[ViolationDraft] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    no_violation_reason: str = ""
    envelope_error: str = ""

    @property
    def errors(self) -> list[str]:
        """Every problem, as lines to send back to Claude."""
        if self.envelope_error:
            return [self.envelope_error]
        return [
            f"violations[{entry['index']}].{error}"
            for entry in self.rejected
            for error in entry["errors"]
        ]


def _validate(tool_input: Any, report: Report) -> _Outcome:
    envelope_error = _envelope_error(tool_input)
    if envelope_error:
        return _Outcome(envelope_error=envelope_error)
    drafts, rejected = validate_items(
        tool_input["violations"],
        report_text=report.text,
        report_date=report_date(report),
        today=timezone.localdate(),
    )
    reason = tool_input.get("no_violation_reason") or ""
    return _Outcome(drafts, rejected, reason.strip() if isinstance(reason, str) else "")


def _envelope_error(tool_input: Any) -> str:
    """What is wrong with the tool input's outer object, or an empty string."""
    if not isinstance(tool_input, dict):
        return "The input must be an object with a violations list."
    if not isinstance(tool_input.get("violations"), list):
        found = type(tool_input.get("violations")).__name__
        return f"violations must be a list of objects, not {found}."
    reason = tool_input.get("no_violation_reason", "")
    if not isinstance(reason, str):
        return "no_violation_reason must be a string."
    return ""


# --- errors -------------------------------------------------------------------


def error_from_sdk(exc: anthropic.APIError) -> ExtractionError:
    """The ``ExtractionError`` for one SDK exception, checked most specific first.

    OverloadedError (529) is a subclass of InternalServerError in current SDK
    releases and was not in older ones, so 529 is also recognised by status.
    """
    if isinstance(exc, anthropic.APITimeoutError):
        return APIUnavailable(f"No answer within {settings.CLAUDE_TIMEOUT_SECONDS} s.")
    if isinstance(exc, anthropic.APIConnectionError):
        return APIUnavailable(f"Could not reach the API: {exc}")
    if not isinstance(exc, anthropic.APIStatusError):
        return InvalidOutput(f"The API's answer could not be read: {exc}")

    status = exc.status_code
    detail = _describe(exc)
    if isinstance(exc, anthropic.RateLimitError) or status == 429:
        return _rate_limit_error(exc, detail)
    if isinstance(exc, anthropic.OverloadedError) or status == 529:
        return Overloaded(f"The API is overloaded: {detail}")
    if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
        return AuthenticationFailed(f"The API key was refused: {detail}")
    if status == 402 or (status == 400 and _SPEND_LIMIT_WORDS.search(detail)):
        # A 400 "credit balance is too low" fails every call, like a spend limit.
        return SpendLimitReached(f"The spend limit is reached: {detail}")
    if status == 404:
        return ModelNotFound(
            f"Not found; is CLAUDE_MODEL {settings.CLAUDE_MODEL!r} right? {detail}"
        )
    if status in _RETRY_LATER_STATUSES or isinstance(
        exc, anthropic.InternalServerError
    ):
        return APIUnavailable(f"The API failed: {detail}")
    return BadRequest(f"The API refused the request: {detail}")


def _rate_limit_error(exc: anthropic.APIStatusError, detail: str) -> ExtractionError:
    retry_after = parse_retry_after(exc.response.headers)
    spend = (exc.error_code or "").endswith("spend_limit_reached")
    if retry_after is None and (spend or _SPEND_LIMIT_WORDS.search(detail)):
        return SpendLimitReached(f"The spend limit is reached: {detail}")
    wait = f", retry after {retry_after:.0f} s" if retry_after is not None else ""
    return RateLimited(f"Rate limited{wait}: {detail}", retry_after=retry_after)


def _describe(exc: anthropic.APIStatusError) -> str:
    message = exc.api_message or exc.message or ""
    request_id = f" (request {exc.request_id})" if exc.request_id else ""
    return f"HTTP {exc.status_code} {message[:500]}{request_id}"


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from retry-after-ms or retry-after (seconds or a date)."""
    milliseconds = headers.get("retry-after-ms")
    seconds = headers.get("retry-after")
    try:
        if milliseconds is not None:
            return max(0.0, float(milliseconds) / 1000)
        if seconds is not None:
            return max(0.0, float(seconds))
    except ValueError:
        pass
    if not seconds:
        return None
    try:
        when = email.utils.parsedate_to_datetime(seconds)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def scrub(text: str) -> str:
    """``text`` with the configured API key and anything shaped like a key removed."""
    key = getattr(settings, "ANTHROPIC_API_KEY", "")
    # A real key is long; replacing a short placeholder would garble the text.
    if len(key) >= 8:
        text = text.replace(key, "[redacted]")
    return _KEY_PATTERN.sub("[redacted]", text)
