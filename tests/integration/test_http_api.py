"""The HTTP API of a real ``mailwright serve``: keys and scopes, sending (the SMTP
submission's intake: events, suppression, Message-ID), idempotency, ``send_at``,
reading a message, the event log and suppressions, and bad input."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mailwright.testing.api import ApiServer, start_api_server
from mailwright.testing.ports import HOST

pytestmark = pytest.mark.integration

MESSAGE: dict[str, Any] = {
    "from": "App <app@example.com>",
    "to": ["ann@example.net"],
    "subject": "Welcome",
    "text": "hello",
    "tags": ["welcome"],
    "metadata": {"user": 7},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    running = start_api_server(tmp_path_factory.mktemp("api"), http="body_timeout = 1.0")
    yield running
    assert running.stop() == 0


def test_send_is_queued_with_events(server: ApiServer) -> None:
    status, sent = server.json("POST", "/v1/messages", MESSAGE, key="send")
    assert status == 202
    assert sent["recipients"] == [{"address": "ann@example.net", "status": "queued"}]
    assert sent["message_id"].startswith("<") and sent["message_id"].endswith("@mx.example.com>")
    status, message = server.json("GET", f"/v1/messages/{sent['queue_id']}", key="read")
    assert status == 200
    assert message["tags"] == ["welcome"] and message["sender"] == "app@example.com"
    assert message["recipients"][0]["address"] == "ann@example.net"
    assert message["recipients"][0]["status"] in ("queued", "deferred")
    queued = [e for e in message["events"] if e["event_type"] == "queued"]
    assert queued[0]["metadata"] == {"user": 7} and queued[0]["tags"] == ["welcome"]


def test_suppressed_recipient_is_not_queued(server: ApiServer) -> None:
    status, _ = server.json(
        "POST", "/v1/suppressions", {"address": "gone@example.net"}, key="suppressions"
    )
    assert status == 201
    body = {**MESSAGE, "to": ["gone@example.net", "kept@example.net"]}
    status, sent = server.json("POST", "/v1/messages", body, key="send")
    assert status == 202
    assert sent["recipients"] == [
        {"address": "kept@example.net", "status": "queued"},
        {"address": "gone@example.net", "status": "suppressed"},
    ]
    status, page = server.json(
        "GET", "/v1/events?type=rejected&recipient=gone@example.net", key="read"
    )
    assert status == 200 and page["events"][0]["reject_reason"] == "suppressed"
    status, alone = server.json(
        "POST", "/v1/messages", {**MESSAGE, "to": ["gone@example.net"]}, key="send"
    )
    assert status == 202 and alone["recipients"][0]["status"] == "suppressed"
    status, listed = server.json(
        "GET", "/v1/suppressions?address=gone@example.net", key="suppressions"
    )
    assert [s["reason"] for s in listed["suppressions"]] == ["manual"]
    status, _, _ = server.request("DELETE", "/v1/suppressions/gone@example.net", key="suppressions")
    assert status == 204
    status, _ = server.json("DELETE", "/v1/suppressions/gone@example.net", key="suppressions")
    assert status == 404


def test_idempotency_key(server: ApiServer) -> None:
    headers = {"Idempotency-Key": "order-1"}
    body = {**MESSAGE, "tags": ["idem"]}
    first = server.json("POST", "/v1/messages", body, key="send", headers=headers)
    again = server.json("POST", "/v1/messages", body, key="send", headers=headers)
    assert first == again and first[0] == 202
    _, page = server.json("GET", "/v1/events?type=queued&tag=idem", key="read")
    assert len(page["events"]) == 1  # queued once
    other = server.json(
        "POST", "/v1/messages", {**MESSAGE, "text": "x"}, key="send", headers=headers
    )
    assert other[0] == 409 and other[1]["field"] == "Idempotency-Key"
    # one application's key space is its own
    admin = server.json(
        "POST", "/v1/messages", {**MESSAGE, "text": "x"}, key="admin", headers=headers
    )
    assert admin[0] == 202


def test_idempotency_key_on_the_postgresql_queue(postgres_url: str, tmp_path: Path) -> None:
    server = start_api_server(tmp_path, extra=f'[queue]\nurl = "{postgres_url}"\n')
    try:
        headers = {"Idempotency-Key": "order-pg"}
        body = {**MESSAGE, "tags": ["idem-pg"]}
        first = server.json("POST", "/v1/messages", body, key="send", headers=headers)
        status, replayed, replay = server.request(
            "POST", "/v1/messages", body, key="send", headers=headers
        )
        assert first[0] == status == 202 and json.loads(replay) == first[1]
        assert replayed.get("Idempotent-Replayed") == "true"
        _, page = server.json("GET", "/v1/events?type=queued&tag=idem-pg", key="read")
        assert len(page["events"]) == 1
        other = server.json(
            "POST", "/v1/messages", {**MESSAGE, "text": "x"}, key="send", headers=headers
        )
        assert other[0] == 409
    finally:
        assert server.stop() == 0


def test_send_at_delays_delivery(server: ApiServer) -> None:
    later = time.time() + 3600
    status, sent = server.json("POST", "/v1/messages", {**MESSAGE, "send_at": later}, key="send")
    assert status == 202
    _, message = server.json("GET", f"/v1/messages/{sent['queue_id']}", key="read")
    assert message["recipients"][0]["next_attempt"] >= later - 1
    assert not [e for e in message["events"] if e["event_type"] == "deferred"]


def test_raw_message(server: ApiServer) -> None:
    raw = b"From: app@example.com\r\nTo: r@example.net\r\nSubject: raw\r\n\r\nbody\r\n"
    body = {
        "raw": base64.b64encode(raw).decode(),
        "envelope": {"from": "app@example.com", "to": ["r@example.net"]},
    }
    status, sent = server.json("POST", "/v1/messages", body, key="send")
    assert status == 202 and sent["message_id"]  # added at intake (RFC 6409 §8.3)


def test_event_cursor_pagination(server: ApiServer) -> None:
    for _ in range(3):
        server.json("POST", "/v1/messages", {**MESSAGE, "tags": ["page"]}, key="send")
    seen: list[str] = []
    cursor = 0
    while True:
        _, page = server.json(
            "GET", f"/v1/events?tag=page&type=queued&limit=2&cursor={cursor}", key="read"
        )
        seen += [e["event_id"] for e in page["events"]]
        cursor = page["next_cursor"]
        if not page["more"]:
            break
    assert len(seen) == len(set(seen)) == 3


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [
        ("read", "POST", "/v1/messages"),
        ("send", "GET", "/v1/events"),
        ("send", "GET", "/v1/suppressions"),
        ("read", "POST", "/v1/suppressions"),
    ],
)
def test_scope_is_enforced(server: ApiServer, scope: str, method: str, path: str) -> None:
    status, answer = server.json(method, path, {} if method == "POST" else None, key=scope)
    assert status == 403 and "scope" in answer["error"]


def test_every_route_needs_a_key(server: ApiServer) -> None:
    routes = [
        ("POST", "/v1/messages"),
        ("GET", "/v1/messages/2KZZPRKPEAS2YW"),
        ("GET", "/v1/events"),
        ("GET", "/v1/suppressions"),
        ("POST", "/v1/suppressions"),
        ("DELETE", "/v1/suppressions/a@example.net"),
        ("GET", "/v1/openapi.json"),
    ]
    for method, path in routes:
        for key in (None, "mwk_wrong", "Basic"):
            headers = {"Authorization": "Basic YTpi"} if key == "Basic" else None
            status, answer = server.json(
                method, path, key=None if key == "Basic" else key, headers=headers
            )
            assert status == 401, (method, path, key)
            assert "error" in answer
    status, _, body = server.request("GET", "/healthz", key=None)
    assert status == 200 and body == b"ok\n"


@pytest.mark.parametrize(
    ("method", "path", "raw", "status", "field"),
    [
        ("POST", "/v1/messages", b"{", 400, "(body)"),
        ("POST", "/v1/messages", b'{"from": 1}', 400, "from"),
        ("POST", "/v1/messages", b"\xff", 400, "(body)"),
        ("POST", "/v1/messages", json.dumps({**MESSAGE, "to": ["x"]}).encode(), 400, "to[0]"),
        ("GET", "/v1/messages/nope", None, 400, "queue_id"),
        ("GET", "/v1/events?limit=0", None, 400, "limit"),
        ("GET", "/v1/events?type=exploded", None, 400, "type"),
        ("GET", "/v1/events?cursor=abc", None, 400, "cursor"),
        ("POST", "/v1/suppressions", b'{"address": "no"}', 400, "address"),
    ],
)
def test_bad_input_names_the_field(
    server: ApiServer, method: str, path: str, raw: bytes | None, status: int, field: str
) -> None:
    got, _, body = server.request(
        method, path, raw=raw, headers={"Content-Type": "application/json"}
    )
    answer = json.loads(body)
    assert (got, answer.get("field")) == (status, field), answer
    assert "Traceback" not in body.decode("utf-8", "replace")


def test_wrong_method_unknown_route_too_large(server: ApiServer) -> None:
    status, headers, body = server.request("PUT", "/v1/messages")
    assert status == 405 and "POST" in headers["Allow"] and json.loads(body)["error"]
    status, _, body = server.request("GET", "/v1/nothing")
    assert status == 404 and json.loads(body)["error"]
    huge = b'{"text": "' + b"a" * (20 << 20) + b'"}'
    status, _, body = server.request(
        "POST", "/v1/messages", raw=huge, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and json.loads(body) == {"error": "request body too large"}
    status, _, _ = server.request(
        "POST", "/v1/messages", raw=b"{}", headers={"Content-Type": "text/plain"}
    )
    assert status == 415


def test_unknown_message_is_404(server: ApiServer) -> None:
    status, answer = server.json("GET", "/v1/messages/00000000000000", key="read")
    assert status == 404 and "00000000000000" in answer["error"]


def test_failed_keys_are_limited(tmp_path: Path) -> None:
    running = start_api_server(tmp_path)
    try:
        started = time.monotonic()
        statuses = [running.json("GET", "/v1/events", key="mwk_bad")[0] for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert time.monotonic() - started >= 1 + 2 + 3 - 0.5  # each failure waits longer
        good = running.json("GET", "/v1/events", key="read")[0]
        assert good == 200
    finally:
        running.stop()


def _documented(doc: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any] | None:
    """The response schema the OpenAPI document gives for this call (KeyError: none)."""
    for template, item in doc["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path.split("?")[0]):
            response = item[method.lower()]["responses"][str(status)]
            content = response.get("content")
            return None if content is None else content["application/json"]["schema"]
    raise KeyError(path)


def test_openapi_document_matches_real_responses(server: ApiServer) -> None:
    status, doc = server.json("GET", "/v1/openapi.json", key="read")
    assert status == 200 and doc["openapi"].startswith("3.")
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    _, sent = server.json("POST", "/v1/messages", MESSAGE, key="send")
    calls: list[tuple[str, str, Any]] = [
        ("POST", "/v1/messages", MESSAGE),
        ("POST", "/v1/messages", {"from": "x"}),
        ("POST", "/v1/messages", {**MESSAGE, "to": ["nobody"]}),
        ("GET", f"/v1/messages/{sent['queue_id']}", None),
        ("GET", "/v1/messages/00000000000000", None),
        ("GET", "/v1/messages/bad", None),
        ("GET", "/v1/events?limit=5", None),
        ("GET", "/v1/events?limit=5000", None),
        ("POST", "/v1/suppressions", {"address": "doc@example.net", "detail": "test"}),
        ("GET", "/v1/suppressions", None),
        ("DELETE", "/v1/suppressions/doc@example.net", None),
        ("DELETE", "/v1/suppressions/doc@example.net", None),
    ]
    for method, path, body in calls:
        got, _, data = server.request(method, path, body)
        schema = _documented(doc, method, path, got)
        if schema is None:
            assert data == b"", (method, path)
            continue
        jsonschema.validate(
            json.loads(data),
            {"components": doc["components"], **schema},
            cls=jsonschema.Draft202012Validator,
        )
    for method, path in (("GET", "/v1/events"), ("POST", "/v1/messages")):
        got, _, data = server.request(method, path, key="mwk_nope")
        schema = _documented(doc, method, path, got)
        assert schema is not None
        jsonschema.validate(json.loads(data), {"components": doc["components"], **schema})


def test_slow_body_times_out(server: ApiServer) -> None:
    with socket.create_connection((HOST, server.http_port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + server.keys["send"].encode() + b"\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"did not arrive in time" in answer and time.monotonic() - started < 5
