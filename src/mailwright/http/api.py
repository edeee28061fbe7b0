"""``/v1``: the application's API — send, read a message's fate and the event log, manage
suppressions — described by the OpenAPI document at ``/v1/openapi.json``
(:mod:`.openapi`)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import replace
from typing import Any

from aiohttp import web

from ..queue import QueueError, idempotency
from ..queue.events import EVENT_TYPES, Event
from ..queue.store import QueueEntry, is_queue_id
from ..smtp import intake
from ..smtp.address import AddressError, parse_path
from ..smtp.intake import Arrival
from .auth import ANY_KEY, json_error, requires
from .compose import FieldError, compose
from .services import API_KEY, SERVICES, Services

MAX_IDEMPOTENCY_KEY = 255
MAX_PAGE = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", post_message)
    app.router.add_get("/v1/messages/{queue_id}", get_message)
    app.router.add_get("/v1/events", get_events)
    app.router.add_get("/v1/suppressions", get_suppressions)
    app.router.add_post("/v1/suppressions", post_suppression)
    app.router.add_delete("/v1/suppressions/{address}", delete_suppression)
    app.router.add_get("/v1/openapi.json", openapi)


def bad_request(field: str, message: str) -> web.HTTPException:
    return json_error(web.HTTPBadRequest, f"{field}: {message}", field=field)


async def read_json(request: web.Request) -> tuple[bytes, Any]:
    try:  # a client that trickles its body is cut off, not waited for
        async with asyncio.timeout(request.app[SERVICES].config().http.body_timeout):
            body = await request.read()  # over client_max_size: 413
    except TimeoutError:
        raise json_error(
            web.HTTPRequestTimeout, "the request body did not arrive in time"
        ) from None
    if request.content_type != "application/json":
        raise json_error(
            web.HTTPUnsupportedMediaType, "send the body as Content-Type: application/json"
        )
    try:
        return body, json.loads(body)
    except UnicodeDecodeError:
        raise bad_request("(body)", "not UTF-8") from None
    except ValueError as exc:
        raise bad_request("(body)", f"malformed JSON: {exc}") from None


def _services(request: web.Request) -> Services:
    services = request.app[SERVICES]
    if services.tracking is None:
        raise json_error(web.HTTPServiceUnavailable, "the API needs the queue's event log")
    return services


@requires("send")
async def post_message(request: web.Request) -> web.Response:
    """Queue a message: 202 with its queue ID once it is on stable storage."""
    services = _services(request)
    assert services.tracking is not None
    key = request[API_KEY]
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not (
        0 < len(idem) <= MAX_IDEMPOTENCY_KEY and idem.isascii() and idem.isprintable()
    ):
        raise bad_request(
            "Idempotency-Key", f"1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )
    body, doc = await read_json(request)
    body_hash = hashlib.sha256(body).hexdigest()
    if idem is not None:
        found = await services.tracking.find_idempotency(key.name, idem, time.time())
        if found is not None:
            return _replay(found, body_hash)
    try:
        composed = compose(doc)
    except FieldError as exc:
        raise bad_request(exc.field, exc.message) from None
    config = services.config()
    if len(composed.message) > config.message_size_limit:
        raise json_error(
            web.HTTPRequestEntityTooLarge,
            f"the message is {len(composed.message)} bytes, over message_size_limit"
            f" ({config.message_size_limit})",
            field="(message)",
        )
    tls = request.transport.get_extra_info("sslcontext") if request.transport else None
    arrival = Arrival(
        client_ip=request.remote or "?",
        listener="http",
        helo=None,
        user=f"api:{key.name}",
        via="HTTPS" if tls is not None else "HTTP",
    )

    def claim(accepted: intake.Accepted) -> idempotency.Claim:
        assert idem is not None
        return idempotency.Claim(
            key.name, idem, body_hash, 202, lambda qid: _answer(replace(accepted, queue_id=qid))
        )

    try:
        result = await services.smtp.submit(
            composed.sender,
            composed.recipients,
            composed.message,
            arrival,
            not_before=composed.send_at,
            claim=claim if idem is not None else None,
        )
    except idempotency.Replay as replay:  # a concurrent request with the same key won
        return _replay(replay.stored, body_hash)
    except (QueueError, OSError) as exc:
        services.logger.event("error", what="enqueue", reason=str(exc), client=arrival.client_ip)
        raise json_error(web.HTTPServiceUnavailable, "queue write error, try again later") from None
    if isinstance(result, intake.Refused):
        raise json_error(web.HTTPUnprocessableEntity, result.reply.text, code=result.reply.code)
    return web.json_response(_answer(result), status=202)


def _answer(accepted: intake.Accepted) -> dict[str, Any]:
    queued = [{"address": a, "status": "queued"} for a in accepted.recipients]
    dropped = [{"address": a, "status": "suppressed"} for a in accepted.suppressed]
    return {
        "queue_id": accepted.queue_id,
        "message_id": accepted.meta.message_id,
        "recipients": queued + dropped,
    }


def _replay(found: idempotency.Stored, body_hash: str) -> web.Response:
    if found.body_hash != body_hash:
        raise json_error(
            web.HTTPConflict,
            "this Idempotency-Key was used with a different body",
            field="Idempotency-Key",
        )
    return web.json_response(
        found.response, status=found.status, headers={"Idempotent-Replayed": "true"}
    )


@requires("read")
async def get_message(request: web.Request) -> web.Response:
    """A message's recipients (their status: queued, delivered, bounced, suppressed ...)
    and its events, while queued and after."""
    services = _services(request)
    assert services.tracking is not None
    queue_id = request.match_info["queue_id"]
    if not is_queue_id(queue_id):
        raise bad_request("queue_id", "not a queue ID (14 characters of Crockford base32)")
    entry = await services.store.get(queue_id)
    events = await services.tracking.read(queue_id=queue_id, limit=10_000)
    if entry is None and not events:
        raise json_error(web.HTTPNotFound, f"no message {queue_id}")
    return web.json_response(message_view(queue_id, entry, events))


FINAL = {"delivered", "bounced", "expired", "rejected"}


def message_view(queue_id: str, entry: QueueEntry | None, events: list[Event]) -> dict[str, Any]:
    status: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.recipient is None:
            continue
        row = status.setdefault(event.recipient, {"address": event.recipient})
        word = {
            "rejected": "suppressed" if event.reject_reason == "suppressed" else "rejected"
        }.get(event.event_type, event.event_type)
        if word in ("queued", "deferred") and row.get("status") in FINAL | {"suppressed"}:
            continue
        row["status"] = word
        row["last_reply"] = event.mta_response or row.get("last_reply")
    if entry is not None:
        for rcpt in entry.recipients:
            row = status.setdefault(rcpt.address, {"address": rcpt.address})
            row["attempts"] = rcpt.attempts
            row["last_reply"] = rcpt.last_reply or row.get("last_reply")
            if rcpt.status == "pending":
                row["status"] = "held" if entry.held else row.get("status", "queued")
                if row["status"] not in ("held", "deferred"):
                    row["status"] = "queued"
                row["next_attempt"] = rcpt.next_attempt
            else:
                row["status"] = rcpt.status
    first = events[0] if events else None
    return {
        "queue_id": queue_id,
        "in_queue": entry is not None,
        "held": bool(entry and entry.held),
        "sender": entry.sender if entry else (first.sender if first else None),
        "message_id": (entry.meta.message_id if entry else None)
        or (first.message_id if first else None),
        "created_at": entry.created_at if entry else (first.timestamp if first else None),
        "tags": list(entry.meta.tags if entry else (first.tags if first else ())),
        "recipients": [
            {
                "address": r["address"],
                "status": r.get("status", "queued"),
                "attempts": r.get("attempts", 0),
                "last_reply": r.get("last_reply"),
                "next_attempt": r.get("next_attempt"),
            }
            for r in status.values()
        ],
        "events": [e.to_json() for e in events],
    }


def _number(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise bad_request(name, "must be a number") from None
    if not 0 <= number < 1e11:
        raise bad_request(name, "out of range")
    return number


@requires("read")
async def get_events(request: web.Request) -> web.Response:
    """The event log, oldest first after ``cursor``; ``next_cursor`` continues it."""
    services = _services(request)
    assert services.tracking is not None
    query = request.query
    cursor = _number(request, "cursor")
    limit = _number(request, "limit")
    if limit is not None and not 1 <= limit <= MAX_PAGE:
        raise bad_request("limit", f"1 to {MAX_PAGE}")
    types = [t for t in query.getall("type", []) for t in t.split(",") if t]
    for event_type in types:
        if event_type not in EVENT_TYPES:
            raise bad_request("type", f"{event_type[:40]!r} is not one of {', '.join(EVENT_TYPES)}")
    recipient = query.get("recipient")
    tag = query.get("tag")
    page = int(limit or 100)
    events = await services.tracking.read(
        after=int(cursor or 0),
        since=_number(request, "since"),
        until=_number(request, "until"),
        limit=page,
        types=types or None,
        recipient=recipient,
        tag=tag,
    )
    next_cursor = events[-1].seq if events else int(cursor or 0)
    return web.json_response(
        {
            "events": [e.to_json() for e in events],
            "next_cursor": next_cursor,
            "more": len(events) == page,
        }
    )


def _address(text: Any, field: str) -> str:
    if not isinstance(text, str):
        raise bad_request(field, "must be an address string")
    try:
        mailbox, rest = parse_path(f"<{text}>", smtputf8=True, null_ok=False)
    except AddressError as exc:
        raise bad_request(field, exc.text) from None
    if mailbox is None or rest:
        raise bad_request(field, "not an address")
    return mailbox.address


@requires("suppressions")
async def get_suppressions(request: web.Request) -> web.Response:
    services = _services(request)
    assert services.tracking is not None
    found = await services.tracking.suppressions()
    address = request.query.get("address")
    if address is not None:
        wanted = _address(address, "address").lower()
        found = [s for s in found if s.address.lower() == wanted]
    return web.json_response({"suppressions": [s.to_json() for s in found]})


@requires("suppressions")
async def post_suppression(request: web.Request) -> web.Response:
    """Suppress an address by hand (reason ``manual``)."""
    services = _services(request)
    assert services.tracking is not None
    _, doc = await read_json(request)
    if not isinstance(doc, dict):
        raise bad_request("(body)", "must be a JSON object")
    for name in doc:
        if name not in ("address", "detail", "expires_at"):
            raise bad_request(str(name)[:60], "unknown field")
    address = _address(doc.get("address"), "address")
    detail = doc.get("detail", "")
    if not isinstance(detail, str) or len(detail) > 300:
        raise bad_request("detail", "a string of at most 300 characters")
    expires = doc.get("expires_at")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        raise bad_request("expires_at", "a Unix time")
    entry = await services.tracking.suppress(
        address, "manual", detail=detail, expires_at=None if expires is None else float(expires)
    )
    return web.json_response(entry.to_json(), status=201)


@requires("suppressions")
async def delete_suppression(request: web.Request) -> web.Response:
    services = _services(request)
    assert services.tracking is not None
    address = _address(request.match_info["address"], "address")
    if not await services.tracking.unsuppress(address):
        raise json_error(web.HTTPNotFound, f"{address} is not suppressed")
    return web.Response(status=204)


@requires(ANY_KEY)
async def openapi(request: web.Request) -> web.Response:
    """The OpenAPI 3 description (any key: only /healthz and /readyz are open)."""
    from .openapi import DOCUMENT

    return web.json_response(DOCUMENT)
