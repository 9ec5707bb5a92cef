"""A local stand-in for the Claude Messages API, for tests and the offline demo.

It serves ``POST /v1/messages`` on 127.0.0.1 (a free port) from a background
thread, in the shape the official SDK parses, following
https://docs.claude.com/en/api/messages and https://docs.claude.com/en/api/errors.
Answers are recorded extractions found by the report text in the request, so
the real SDK, its retries and its error classes are exercised over real HTTP.
Faults (rate limits, overload, timeouts, malformed or cut-off output) are
queued one at a time and served before normal answers.

Only the standard library is used, so the demo runs without test packages.
"""

import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from violations.text import normalize_text

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parent / "samples"
DEFAULT_TOOL_NAME = "record_violations"
NO_RECORDING_REASON = "The stand-in has no recorded extraction for this report text."

# The real API ignores cache_control on a prefix shorter than this (Sonnet models;
# Haiku needs more), reporting neither a cache write nor a read.
MIN_CACHEABLE_TOKENS = 1024
CACHE_TTL_SECONDS = {"5m": 300, "1h": 3600}

# A timeout fault outlasts the client's own timeout by this much, and never
# waits longer than the cap when the client sends no timeout header.
TIMEOUT_OVERSHOOT_SECONDS = 1.0
TIMEOUT_DEFAULT_SECONDS = 120.0

FAULT_KINDS = (
    "rate_limited",
    "spend_limit",
    "overloaded",
    "server_error",
    "timeout",
    "malformed",
    "no_tool",
    "max_tokens",
    "refusal",
    "auth",
    "permission",
    "bad_request",
)

# kind -> (HTTP status, error type, default message)
_ERROR_FAULTS = {
    "rate_limited": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit.",
    ),
    "spend_limit": (
        429,
        "rate_limit_error",
        "You have reached your specified API usage limits. "
        "You will regain access on 2027-01-01 at 00:00 UTC.",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "permission": (
        403,
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    "bad_request": (
        400,
        "invalid_request_error",
        "prompt is too long: 212345 tokens > 200000 maximum",
    ),
}


class RecordedRequest(dict):
    """The JSON body of one request received, with its headers and outcome.

    Indexing reads the body (``request["system"]``); ``headers`` has lower-case
    names; ``status`` is the HTTP status served and ``fault`` the fault kind
    served, or None for a normal answer; ``api_key`` is the key sent.
    """

    def __init__(self, body: Mapping[str, Any], headers: Mapping[str, str]):
        super().__init__(body)
        self.headers = dict(headers)
        self.status: int | None = None
        self.fault: str | None = None

    @property
    def api_key(self) -> str | None:
        """The key sent, as ``x-api-key`` or (newer SDKs) a Bearer token."""
        key = self.headers.get("x-api-key")
        if key:
            return key
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass
class _Action:
    """One queued answer: a fault kind or a given tool input."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    # Normalised report text the answer is kept for; empty for any request.
    report_text: str = ""


@dataclass
class _Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex[:24]}")


class MessagesStandIn:
    """A Messages API server answering with recorded extractions.

    ``recordings`` maps a report text to the tool input Claude returns for it.
    The answer for a request is the recording whose text occurs in the latest
    user message containing one (whitespace, case, punctuation and Arabic
    spelling variants are normalised away). A text with no recording gets an
    empty violation list.
    """

    def __init__(self, recordings: Mapping[str, Mapping[str, Any]] | None = None):
        self.latency: float | Callable[[], float] = 0.0
        self.min_cacheable_tokens = MIN_CACHEABLE_TOKENS
        self._recordings = _normalised_recordings(recordings or {})
        self._lock = threading.Lock()
        self._queue: deque[_Action] = deque()
        self._requests: list[RecordedRequest] = []
        self._cache: dict[str, float] = {}
        self._in_flight = 0
        self.max_in_flight = 0
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "MessagesStandIn":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The address to give the SDK as ``base_url``."""
        if self._server is None:
            raise RuntimeError("The stand-in is not running; call start() first.")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def stopped(self) -> bool:
        """True once stop() was called; nothing is answered from then on."""
        return self._stopping.is_set()

    @property
    def pending(self) -> int:
        """Queued faults and responses not yet served."""
        with self._lock:
            return len(self._queue)

    def start(self) -> "MessagesStandIn":
        """Listen on 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="messages-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests still waiting (timeouts, latency) end at once."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def reset(self) -> None:
        """Forget requests, queued answers, the prompt cache and latency."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._cache.clear()
            self.max_in_flight = self._in_flight
        self.latency = 0.0

    def queue_fault(
        self,
        kind: str,
        *,
        times: int = 1,
        report_text: str | None = None,
        **options: Any,
    ) -> None:
        """Serve the fault ``kind`` to the next ``times`` requests, after earlier ones.

        With ``report_text`` only requests carrying that report text get it
        (concurrent batches send requests in no fixed order).

        Options: ``message`` (error text), ``retry_after`` (seconds,
        rate_limited, default 1), ``seconds`` (timeout: how long to hold the
        request, default just over the client's own timeout), ``input``
        (malformed, max_tokens: the tool input to send), ``text`` (no_tool,
        refusal: the text block).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(
                f"Unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}."
            )
        target = normalize_text(report_text or "")
        with self._lock:
            self._queue.extend(
                _Action(kind, dict(options), target) for _ in range(times)
            )

    def queue_response(
        self, tool_input: Mapping[str, Any], *, report_text: str | None = None
    ) -> None:
        """Answer the next request (after queued ones) with this tool input.

        With ``report_text``, the next request carrying that report text.
        """
        action = _Action("response", {"input": dict(tool_input)})
        action.report_text = normalize_text(report_text or "")
        with self._lock:
            self._queue.append(action)

    def record(self, text: str, tool_input: Mapping[str, Any]) -> None:
        """Answer requests carrying this report text with this tool input."""
        with self._lock:
            self._recordings = [
                *_normalised_recordings({text: tool_input}),
                *self._recordings,
            ]

    def recording_for(self, text: str) -> dict[str, Any] | None:
        """The recorded tool input whose report text occurs in ``text``."""
        haystack = normalize_text(text)
        best = None
        for needle, tool_input in self._recordings:
            if needle in haystack and (best is None or len(needle) > len(best[0])):
                best = (needle, tool_input)
        return json.loads(json.dumps(best[1])) if best else None

    # Request handling, called from the server's threads.

    def _handle(self, body: dict[str, Any], headers: Mapping[str, str]) -> _Reply:
        request = RecordedRequest(body, headers)
        with self._lock:
            self._requests.append(request)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            self._wait(self._latency_seconds())
            reply = self._reply_to(request)
        finally:
            with self._lock:
                self._in_flight -= 1
        request.status = reply.status
        return reply

    def _latency_seconds(self) -> float:
        latency = self.latency
        return float(latency() if callable(latency) else latency)

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _reply_to(self, request: RecordedRequest) -> _Reply:
        problem = _request_problem(request)
        if problem:
            return problem
        action = self._next_action(request)
        if action is None:
            return self._message(request, self._recorded_input(request))
        if action.kind == "response":
            return self._message(request, action.options["input"])
        request.fault = action.kind
        return self._fault(request, action)

    def _next_action(self, request: RecordedRequest) -> _Action | None:
        """The first queued answer meant for this request, taken off the queue."""
        conversation = None
        with self._lock:
            for action in self._queue:
                if action.report_text:
                    if conversation is None:
                        texts = _user_texts_latest_first(request.get("messages") or [])
                        conversation = normalize_text(" ".join(texts))
                    if action.report_text not in conversation:
                        continue
                self._queue.remove(action)
                return action
        return None

    def _recorded_input(self, request: RecordedRequest) -> dict[str, Any]:
        for text in _user_texts_latest_first(request.get("messages") or []):
            recording = self.recording_for(text)
            if recording is not None:
                return recording
        return {"violations": [], "no_violation_reason": NO_RECORDING_REASON}

    def _fault(self, request: RecordedRequest, action: _Action) -> _Reply:
        kind, options = action.kind, action.options
        if kind in _ERROR_FAULTS:
            return _error_fault(kind, options)
        if kind == "timeout":
            self._wait(_timeout_seconds(request, options))
            return self._message(request, self._recorded_input(request))
        if kind == "malformed":
            return self._message(request, options.get("input", _MALFORMED_INPUT))
        if kind == "max_tokens":
            partial = options.get("input") or _cut_off(self._recorded_input(request))
            return self._message(request, partial, stop_reason="max_tokens")
        text = options.get("text", _FAULT_TEXTS[kind])
        stop_reason = "refusal" if kind == "refusal" else "end_turn"
        return self._text_message(request, text, stop_reason=stop_reason)

    def _message(
        self,
        request: RecordedRequest,
        tool_input: Mapping[str, Any],
        *,
        stop_reason: str = "tool_use",
    ) -> _Reply:
        if not request.get("tools") and _wants_json_text(request):
            return self._text_message(
                request, json.dumps(tool_input, ensure_ascii=False), "end_turn"
            )
        block = {
            "type": "tool_use",
            "id": f"toolu_{uuid.uuid4().hex[:24]}",
            "name": _tool_name(request),
            "input": tool_input,
        }
        return self._answer(request, [block], stop_reason, _tokens(tool_input))

    def _text_message(
        self, request: RecordedRequest, text: str, stop_reason: str
    ) -> _Reply:
        block = {"type": "text", "text": text}
        return self._answer(request, [block], stop_reason, _tokens(text))

    def _answer(
        self,
        request: RecordedRequest,
        content: list[dict[str, Any]],
        stop_reason: str,
        output_tokens: int,
    ) -> _Reply:
        if stop_reason == "max_tokens":
            output_tokens = int(request.get("max_tokens") or output_tokens)
        body = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": request.get("model"),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {**self._input_usage(request), "output_tokens": output_tokens},
        }
        return _Reply(200, body)

    def _input_usage(self, request: RecordedRequest) -> dict[str, Any]:
        """Token counts, with the cacheable prefix written once and read after."""
        prefix, ttl = _cacheable_prefix(request)
        prefix_tokens = _tokens(prefix) if prefix else 0
        rest_tokens = _tokens(request.get("messages") or [])
        if not prefix or prefix_tokens < self.min_cacheable_tokens:
            return _usage(rest_tokens + _tokens(_uncached_part(request)), 0, 0, ttl)
        key = hashlib.sha256(prefix.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key, 0.0) > now
            self._cache[key] = now + CACHE_TTL_SECONDS.get(ttl, 300)
        if hit:
            return _usage(rest_tokens, 0, prefix_tokens, ttl)
        return _usage(rest_tokens, prefix_tokens, 0, ttl)


class _Handler(BaseHTTPRequestHandler):
    server_version = "messages-standin/1"
    # Keep-alive, as the SDK's connection pool expects of the real API.
    protocol_version = "HTTP/1.1"
    # An idle kept-alive connection is let go after this many seconds.
    timeout = 30
    # Headers and body go out in two writes; without this, Nagle's algorithm
    # and the client's delayed ACK add about 40 ms to every answer.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
        standin: MessagesStandIn = self.server.standin  # type: ignore[attr-defined]
        body = self._read_json()
        if standin.stopped:
            self._hang_up()
            return
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/messages":
            self._send(_error_reply(404, "not_found_error", "Not found"))
            return
        if body is None:
            self._send(_error_reply(400, "invalid_request_error", "Body is not JSON."))
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            reply = standin._handle(body, headers)
        except Exception:
            # A broken test hook (a latency callable, say) should read as a
            # server error in the test, not as a dropped connection.
            logger.exception("stand-in failed to answer")
            reply = _error_reply(500, "api_error", "The stand-in failed to answer.")
        if standin.stopped:
            self._hang_up()
            return
        self._send(reply)

    def do_GET(self) -> None:  # noqa: N802
        self._send(_error_reply(404, "not_found_error", "Not found"))

    def _hang_up(self) -> None:
        # A stopped server answers nothing, also on a connection kept alive
        # from before: the client sees the connection drop.
        self.close_connection = True

    def _read_json(self) -> dict[str, Any] | None:
        length = int(self.headers.get("content-length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _send(self, reply: _Reply) -> None:
        payload = json.dumps(reply.body, ensure_ascii=False).encode()
        try:
            self.send_response(reply.status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.send_header("request-id", reply.request_id)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a timeout fault); nobody reads this.
            logger.debug("stand-in client went away before the answer")

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("stand-in: " + format, *args)


_MALFORMED_INPUT = {
    # A frequent real failure: the list sent as a JSON string, the reason left out.
    "violations": '[{"violation_type": "AIRSTRIKE", "casualties": "several"}]',
}

_FAULT_TEXTS = {
    "no_tool": "I read the report. It describes an airstrike, but here is a summary "
    "instead of the structured list.",
    "refusal": "I can't help with that request.",
}


def _error_fault(kind: str, options: Mapping[str, Any]) -> _Reply:
    status, error_type, message = _ERROR_FAULTS[kind]
    reply = _error_reply(status, error_type, options.get("message", message))
    if kind == "rate_limited":
        reply.headers["retry-after"] = _seconds_header(options.get("retry_after", 1))
    if kind == "spend_limit":
        reply.body["error"]["details"] = {"error_code": "enforced_spend_limit_reached"}
    if kind in ("rate_limited", "overloaded", "server_error"):
        reply.headers["x-should-retry"] = "true"
    return reply


def _error_reply(status: int, error_type: str, message: str) -> _Reply:
    reply = _Reply(status, {"type": "error", "error": {}})
    reply.body["error"] = {"type": error_type, "message": message}
    reply.body["request_id"] = reply.request_id
    return reply


def _request_problem(request: RecordedRequest) -> _Reply | None:
    """The error the real API gives a request it cannot accept, if any."""
    if not request.api_key:
        return _error_reply(401, "authentication_error", "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return _error_reply(
            400, "invalid_request_error", "anthropic-version: header is required"
        )
    for name in ("model", "max_tokens", "messages"):
        if name not in request:
            return _error_reply(400, "invalid_request_error", f"{name}: Field required")
    if not isinstance(request["messages"], list):
        return _error_reply(
            400, "invalid_request_error", "messages: Input should be a valid list"
        )
    return None


def _seconds_header(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _timeout_seconds(request: RecordedRequest, options: Mapping[str, Any]) -> float:
    if "seconds" in options:
        return float(options["seconds"])
    try:
        client_timeout = float(request.headers.get("x-stainless-timeout", ""))
    except ValueError:
        return TIMEOUT_DEFAULT_SECONDS
    return min(client_timeout + TIMEOUT_OVERSHOOT_SECONDS, TIMEOUT_DEFAULT_SECONDS)


def _cut_off(tool_input: Mapping[str, Any]) -> dict[str, Any]:
    """What arrives when output ends mid-way: the first item, half its fields."""
    items = tool_input.get("violations") or []
    if not items:
        return {}
    first = list(items[0].items())
    return {"violations": [dict(first[: max(1, len(first) // 2)])]}


def _tool_name(request: Mapping[str, Any]) -> str:
    choice = request.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name"):
        return choice["name"]
    tools = request.get("tools") or []
    return tools[0].get("name", DEFAULT_TOOL_NAME) if tools else DEFAULT_TOOL_NAME


def _wants_json_text(request: Mapping[str, Any]) -> bool:
    output_format = (request.get("output_config") or {}).get("format") or {}
    return output_format.get("type") == "json_schema"


def _user_texts_latest_first(messages: list[Mapping[str, Any]]) -> Iterable[str]:
    for message in reversed(messages):
        if message.get("role") == "user":
            yield _block_text(message.get("content"))


def _block_text(content: Any) -> str:
    """All text in a message's content, tool results included."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(_block_text(block) for block in content)
    if isinstance(content, dict):
        if content.get("type") == "text":
            return content.get("text", "")
        if content.get("type") == "tool_result":
            return _block_text(content.get("content"))
    return ""


def _cacheable_prefix(request: Mapping[str, Any]) -> tuple[str, str]:
    """The tools and system text up to the last cache_control mark, and its TTL.

    The API caches in the order tools, system, messages; a mark on the last
    system block (or the top-level ``cache_control``) covers both.
    """
    parts = [json.dumps(request.get("tools") or [], sort_keys=True)]
    marked, ttl = None, "5m"
    for tool in request.get("tools") or []:
        if tool.get("cache_control"):
            marked, ttl = len(parts), tool["cache_control"].get("ttl", "5m")
    system = request.get("system") or []
    blocks = [{"type": "text", "text": system}] if isinstance(system, str) else system
    for block in blocks:
        parts.append(block.get("text", ""))
        if block.get("cache_control"):
            marked, ttl = len(parts), block["cache_control"].get("ttl", "5m")
    if request.get("cache_control"):
        marked, ttl = len(parts), request["cache_control"].get("ttl", "5m")
    if marked is None:
        return "", ttl
    return "\n".join(parts[:marked]), ttl


def _uncached_part(request: Mapping[str, Any]) -> str:
    system = request.get("system") or ""
    return json.dumps([request.get("tools") or [], system], ensure_ascii=False)


def _usage(input_tokens: int, written: int, read: int, ttl: str) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": written if ttl != "1h" else 0,
            "ephemeral_1h_input_tokens": written if ttl == "1h" else 0,
        },
    }


def _tokens(value: Any) -> int:
    """About four characters a token, the rule of thumb for English text."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


def _normalised_recordings(
    recordings: Mapping[str, Mapping[str, Any]],
) -> list[tuple[str, dict[str, Any]]]:
    pairs = []
    for text, tool_input in recordings.items():
        needle = normalize_text(text)
        if needle:
            pairs.append((needle, dict(tool_input)))
    return pairs


@lru_cache(maxsize=1)
def _sample_recordings() -> dict[str, dict[str, Any]]:
    extractions = json.loads((SAMPLES_DIR / "extractions.json").read_text("utf-8"))
    recordings = {}
    for report in load_sample_reports():
        if report["source_url"] in extractions:
            recordings[report["text"]] = extractions[report["source_url"]]
    return recordings


def load_sample_reports() -> list[dict[str, Any]]:
    """The bundled sample reports, in the import format, in file order."""
    lines = (SAMPLES_DIR / "reports.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def sample_recordings() -> dict[str, dict[str, Any]]:
    """Report text -> recorded tool input, for every bundled sample report."""
    return json.loads(json.dumps(_sample_recordings()))
