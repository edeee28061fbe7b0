"""The operator's status page at ``/``: server-rendered HTML (Jinja2, autoescaped), no
JavaScript, assets from the package.

Logging in takes the ``[http] password_hash`` password or an ``admin`` API key; failures
are slowed and limited per client like API keys. The session is a signed cookie
(``Secure; HttpOnly; SameSite=Strict``, 12 hours): ``expiry.nonce.HMAC``, under a key
derived from the data directory's VERP key, so every worker accepts it and no session
table is needed. Every form carries a CSRF token (an HMAC of the session's nonce; the
login form's, of a pre-login cookie), checked before anything changes — SameSite alone
does not cover older browsers. Logging out clears the cookie (a copied cookie stays
valid until it expires: rotate the VERP key to end every session).
"""

from __future__ import annotations

import asyncio
import datetime
import email.header
import hashlib
import hmac
import json
import secrets
import time
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from .. import message as rfc5322
from ..dmarc_reports.received import ReportStore
from ..dns import server_resolver
from ..doctor.runner import run_checks
from ..queue.events import Event
from ..queue.store import QueueEntry, is_queue_id
from ..smtp.address import AddressError, parse_path
from ..smtp.auth import verify_password
from ..spool import HEAD_LIMIT
from ..verp import load_or_create_key
from .auth import OPEN, PAGE, requires
from .monitoring import certificate, days_left
from .services import SERVICES, STORE_KEY, Services

SESSION_COOKIE = "mw_session"
LOGIN_COOKIE = "mw_login"
SESSION_SECONDS = 12 * 3600
MAX_LISTED = 200
ACTIONS = ("hold", "release", "retry", "delete")
SECURITY_HEADERS = {
    # no script at all, styles from us only, forms post to us only, never framed
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self';"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("mailwright.http", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
SESSION_KEY = web.RequestKey("session_nonce", str)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_get("/ui/static/{name}", static)
    app.router.add_get("/ui/messages/{queue_id}", message_page)
    app.router.add_post("/ui/messages/{queue_id}/{action}", message_action)
    app.router.add_post("/ui/suppressions", suppress)
    app.router.add_post("/ui/suppressions/remove", unsuppress)
    app.router.add_post("/ui/doctor", doctor)


# -- sessions and CSRF -------------------------------------------------------------------


def _secret(services: Services) -> bytes:
    data_dir = services.config().data_dir
    return hmac.new(load_or_create_key(data_dir), b"mailwright http session", "sha256").digest()


def _mac(secret: bytes, text: str) -> str:
    return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


def _session_nonce(request: web.Request, secret: bytes) -> str | None:
    value = request.cookies.get(SESSION_COOKIE, "")
    parts = value.split(".")
    if len(parts) != 3 or not parts[0].isdigit():
        return None
    expiry, nonce, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, f"session.{expiry}.{nonce}")):
        return None
    if int(expiry) < time.time():
        return None
    return nonce


def csrf_token(secret: bytes, nonce: str) -> str:
    return _mac(secret, f"csrf.{nonce}")


async def page_session(request: web.Request, handler: Any) -> web.StreamResponse:
    """The authenticate middleware's part for :data:`PAGE` routes: a valid session, and
    for a POST a valid CSRF token; else the login page (or ``403`` for a bad token)."""
    services = request.app[SERVICES]
    secret = _secret(services)
    nonce = _session_nonce(request, secret)
    if nonce is None:
        raise web.HTTPSeeOther("/login")
    if request.method == "POST":
        form = await request.post()
        token = form.get("csrf")
        if not isinstance(token, str) or not hmac.compare_digest(token, csrf_token(secret, nonce)):
            raise web.HTTPForbidden(
                text="bad or missing CSRF token: reload the page and try again\n"
            )
    request[SESSION_KEY] = nonce
    response: web.StreamResponse = await handler(request)
    return response


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    services = request.app[SERVICES]
    nonce = request.get(SESSION_KEY)
    values.setdefault("csrf", csrf_token(_secret(services), nonce) if nonce else "")
    values.setdefault("flash", request.query.get("flash", "")[:200])
    values.setdefault("hostname", services.config().hostname)
    text = _templates.get_template(template).render(**values)
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        status=status,
        headers=SECURITY_HEADERS,
    )


def _set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=True, httponly=True, samesite="Strict"
    )


@requires(OPEN)
async def login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    services = request.app[SERVICES]
    pre = secrets.token_hex(16)
    response = render(
        request,
        "login.html",
        status=status,
        error=error,
        login_csrf=_mac(_secret(services), f"login.{pre}"),
        csrf="",
    )
    _set_cookie(response, LOGIN_COOKIE, pre, 3600)
    return response


@requires(OPEN)
async def login(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    secret = _secret(services)
    form = await request.post()
    pre = request.cookies.get(LOGIN_COOKIE, "")
    token = form.get("csrf")
    if (
        not pre
        or not isinstance(token, str)
        or not hmac.compare_digest(token, _mac(secret, f"login.{pre}"))
    ):
        return await login_form(request, "The form expired; please try again.", 403)
    ip = request.remote or "?"
    if services.limiter.blocked(ip):
        return await login_form(request, "Too many failed attempts; try again later.", 429)
    password = form.get("password")
    ok = (
        isinstance(password, str) and 0 < len(password) <= 1024 and await _check(services, password)
    )
    if not ok:
        services.logger.event("auth-failed", client=ip, mechanism="status-page")
        await asyncio.sleep(services.limiter.failed(ip))
        return await login_form(request, "Wrong password or key.", 401)
    services.limiter.succeeded(ip)
    services.logger.event("auth", client=ip, mechanism="status-page")
    expiry, nonce = int(time.time()) + SESSION_SECONDS, secrets.token_hex(16)
    response = web.HTTPSeeOther("/")
    _set_cookie(
        response,
        SESSION_COOKIE,
        f"{expiry}.{nonce}.{_mac(secret, f'session.{expiry}.{nonce}')}",
        SESSION_SECONDS,
    )
    response.del_cookie(LOGIN_COOKIE, path="/")
    raise response


async def _check(services: Services, password: str) -> bool:
    key = services.keys().find(password)
    if key is not None and key.allows("admin"):
        return True
    stored = services.config().http.password_hash
    if stored is None:
        return False
    return await asyncio.to_thread(verify_password, password, stored)


@requires(PAGE)
async def logout(request: web.Request) -> web.Response:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response


@requires(OPEN)
async def static(request: web.Request) -> web.Response:
    """The stylesheet (the only asset): shipped in the package, no CDN."""
    name = request.match_info["name"]
    if name != "style.css":
        raise web.HTTPNotFound(text="no such file\n")
    data = resources.files("mailwright.http").joinpath("static", name).read_bytes()
    return web.Response(
        body=data,
        content_type="text/css",
        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- the page ----------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _subject(data: bytes) -> str:
    header, _ = rfc5322.split_header(data[:65536])
    raw = rfc5322.field_value(header + b"\r\n", "Subject") or ""
    try:
        return str(email.header.make_header(email.header.decode_header(raw)))[:200]
    except (ValueError, LookupError, UnicodeError):
        return raw[:200]


def _event_row(event: Event) -> dict[str, Any]:
    detail = event.mta_response or event.reject_reason or event.details.get("warning") or ""
    css = {"delivered": "ok", "bounced": "bad", "rejected": "bad", "complained": "bad"}
    return {
        "time": _when(event.timestamp),
        "type": event.event_type,
        "css": css.get(event.event_type, "warn" if event.event_type == "deferred" else ""),
        "recipient": event.recipient,
        "queue_id": event.queue_id,
        "detail": str(detail)[:300],
    }


def _state(entry: QueueEntry) -> str:
    if entry.held:
        return "held"
    if any(r.attempts for r in entry.pending):
        return "deferred"
    return "waiting"


def _actions(entry: QueueEntry) -> list[str]:
    return ["release" if entry.held else "hold", "retry", "delete"]


@requires(PAGE)
async def index(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    store = services.store
    q = request.query.get("q", "")[:200].strip().lower()
    state = request.query.get("state", "")
    if state not in ("", "held", "deferred", "due"):
        state = ""
    entries = await store.list_entries()
    rows: list[dict[str, Any]] = []
    for entry in reversed(entries):  # newest first
        if len(rows) >= MAX_LISTED:
            break
        if state == "held" and not entry.held:
            continue
        if state == "deferred" and _state(entry) != "deferred":
            continue
        if state == "due" and (entry.held or _state(entry) == "deferred"):
            continue
        try:
            subject = _subject(await store.read_message_part(entry.id, 0, HEAD_LIMIT))
        except KeyError:
            continue
        recipients = [r.address for r in entry.pending] or [r.address for r in entry.recipients]
        haystack = " ".join([entry.id.lower(), entry.sender.lower(), subject.lower(), *recipients])
        if q and q not in haystack.lower():
            continue
        last = next((r.last_reply for r in entry.pending if r.last_reply), None)
        rows.append(
            {
                "id": entry.id,
                "subject": subject,
                "sender": entry.sender,
                "recipients": recipients[:5] + (["…"] if len(recipients) > 5 else []),
                "created": _when(entry.created_at),
                "state": _state(entry),
                "last_reply": (last or "")[:200],
                "actions": _actions(entry),
            }
        )
    events = await services.tracking.latest(50) if services.tracking else []
    suppressions = await services.tracking.suppressions() if services.tracking else []
    config = services.config()
    info = await asyncio.to_thread(certificate, config, request.app[STORE_KEY])
    return render(
        request,
        "index.html",
        depth=len(entries),
        q=q,
        state=state,
        messages=rows,
        events=[_event_row(e) for e in reversed(events)],
        suppressions=[
            {
                "address": s.address,
                "reason": s.reason,
                "detail": s.detail,
                "created": _when(s.created_at),
                "expires": _when(s.expires_at),
            }
            for s in suppressions
        ],
        doctor=await asyncio.to_thread(_last_doctor, config.data_dir),
        dmarc=await asyncio.to_thread(_dmarc_summary, config.data_dir),
        certificate=None
        if info is None
        else {
            "names": info.names,
            "not_after": info.not_after.strftime("%Y-%m-%d"),
            "days": int(days_left(info)),
            "self_signed": info.self_signed,
        },
    )


def _dmarc_summary(data_dir: Path) -> dict[str, Any] | None:
    try:
        store = ReportStore.in_data_dir(data_dir)
    except Exception:  # no reports database is not an error of the page
        return None
    try:
        summary = store.summarize(since=time.time() - 30 * 86400)
        return summary.as_json()
    finally:
        store.close()


def _doctor_file(data_dir: Path) -> Path:
    return data_dir / "status" / "doctor.json"


def _last_doctor(data_dir: Path) -> dict[str, Any] | None:
    try:
        result: dict[str, Any] = json.loads(_doctor_file(data_dir).read_text())
    except (OSError, ValueError):
        return None
    return result


@requires(PAGE)
async def doctor(request: web.Request) -> web.Response:
    """``mailwright check`` for the first domain, now; the result is kept for the page."""
    services = request.app[SERVICES]
    config = services.config()
    if not config.domains:
        raise web.HTTPSeeOther("/?flash=No+domains+configured#doctor")
    resolver = server_resolver(config.dns.nameserver, config.dns.timeout)
    report = await run_checks(config.domains[0], config, resolver)
    saved = {
        "when": _when(time.time()),
        "domain": report.domain,
        "checks": [c.to_json() for c in report.checks],
    }

    def save() -> None:
        path = _doctor_file(config.data_dir)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(saved))
        tmp.replace(path)

    await asyncio.to_thread(save)
    raise web.HTTPSeeOther("/?flash=Checks+finished#doctor")


@requires(PAGE)
async def message_page(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    queue_id = request.match_info["queue_id"]
    if not is_queue_id(queue_id):
        raise web.HTTPNotFound(text="no such message\n")
    entry = await services.store.get(queue_id)
    header = b""
    if entry is not None:
        try:
            header, _ = rfc5322.split_header(
                await services.store.read_message_part(queue_id, 0, HEAD_LIMIT)
            )
        except KeyError:
            entry = None
    events = await services.tracking.read(queue_id=queue_id) if services.tracking else []
    if entry is None and not events:
        raise web.HTTPNotFound(text="no such message\n")
    return render(
        request,
        "message.html",
        queue_id=queue_id,
        entry=entry,
        created=_when(entry.created_at) if entry else "",
        header=header.decode("utf-8", "replace"),
        actions=_actions(entry) if entry else [],
        events=[_event_row(e) for e in events],
    )


@requires(PAGE)
async def message_action(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    queue_id, action = request.match_info["queue_id"], request.match_info["action"]
    if action not in ACTIONS or not is_queue_id(queue_id):
        raise web.HTTPNotFound(text="no such action\n")
    store = services.store
    if action == "retry":
        done = bool(await store.retry(queue_id))
    else:
        done = await getattr(store, action)(queue_id)
    services.logger.event("queue-" + action, queue_id, client=request.remote, via="status-page")
    word = {"hold": "held", "release": "released", "retry": "retried", "delete": "deleted"}[action]
    flash = f"{queue_id} {word}" if done else f"{queue_id} is no longer in the queue"
    target = "/" if action == "delete" else f"/ui/messages/{queue_id}"
    raise web.HTTPSeeOther(f"{target}?flash={flash.replace(' ', '+')}")


def _form_address(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        mailbox, rest = parse_path(f"<{value.strip()}>", smtputf8=True, null_ok=False)
    except AddressError:
        return None
    return mailbox.address if mailbox is not None and not rest else None


@requires(PAGE)
async def suppress(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await request.post()
    address = _form_address(form.get("address"))
    if address is None or services.tracking is None:
        raise web.HTTPSeeOther("/?flash=Not+an+address#suppressions")
    detail = form.get("detail")
    await services.tracking.suppress(
        address, "manual", detail=(detail if isinstance(detail, str) else "")[:300]
    )
    raise web.HTTPSeeOther("/?flash=Suppressed#suppressions")


@requires(PAGE)
async def unsuppress(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    form = await request.post()
    address = _form_address(form.get("address"))
    if address is None or services.tracking is None:
        raise web.HTTPSeeOther("/?flash=Not+an+address#suppressions")
    removed = await services.tracking.unsuppress(address)
    raise web.HTTPSeeOther(f"/?flash={'Removed' if removed else 'Not+suppressed'}#suppressions")
