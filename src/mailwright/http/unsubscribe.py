"""RFC 8058 one-click unsubscribe: ``/unsubscribe/TOKEN`` for list members.

The link comes from the member's copy of a list post (:mod:`mailwright.rfc8058` put it
there at intake). No API key: the token is the credential (:data:`.auth.TOKEN`).

* ``POST`` with the body ``List-Unsubscribe=One-Click`` (RFC 8058 §3.2: form-urlencoded
  or multipart, sent by the mail provider or by the button of our page) removes the
  member through Mailman's REST API, without a confirmation step, and answers ``200``
  with a short page — never a redirect (RFC 8058 §3.2: redirected POSTs fail).
  Mailman unreachable: ``503`` with Retry-After, the provider tries again.
* ``GET`` only shows a page with a button that POSTs (no JavaScript): link checkers
  and anti-virus scanners fetch every URL in a message, and must not unsubscribe anyone
  (the reason RFC 8058 exists).

A bad token is ``404``, an expired one ``410``, a wrong body ``400``: each a page that
says so. A removal is recorded as an ``unsubscribed`` event (django-anymail's name).
"""

from __future__ import annotations

import html
import time

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import MailwrightError
from ..mailman import MailmanError
from ..queue import QueueError
from ..queue.events import Event
from ..rfc8058 import POST_VALUE, ROUTE, OneClickToken, TokenError, TokenExpired, verify_token
from .auth import TOKEN, requires
from .services import SERVICES

RETRY_AFTER = "300"
"""Seconds a provider should wait when Mailman is down."""
_FORM_KEY, _, _FORM_VALUE = POST_VALUE.partition("=")


def add_routes(app: web.Application) -> None:
    app.router.add_get(ROUTE + "/{token}", show, allow_head=True)
    app.router.add_post(ROUTE + "/{token}", one_click)


def _page(status: int, title: str, text: str, *, form: bool = False) -> web.Response:
    """A small self-contained HTML page (no scripts, nothing fetched)."""
    button = (
        '<form method="post">'
        f'<input type="hidden" name="{_FORM_KEY}" value="{_FORM_VALUE}">'
        '<button type="submit">Unsubscribe</button></form>'
        if form
        else ""
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}</body></html>"
    )
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER
    return web.Response(status=status, text=body, content_type="text/html", headers=headers)


def _verified(request: web.Request) -> OneClickToken | web.Response:
    """The token's list and member, or the page that says why there are none."""
    services = request.app[SERVICES]
    key = services.unsubscribe_key
    config = services.config()
    if key is None or config.mailman is None:
        return _page(404, "Unknown link", "This server does not manage mailing lists.")
    try:
        return verify_token(
            key,
            request.match_info["token"],
            max_age_days=config.mailman.unsubscribe_max_age_days,
        )
    except TokenExpired:
        return _page(
            410,
            "Link expired",
            "This unsubscribe link is too old. Use the link in a recent message of the"
            " list, or write to the list's -leave address.",
        )
    except TokenError:
        return _page(404, "Unknown link", "This is not a valid unsubscribe link.")


@requires(TOKEN)
async def show(request: web.Request) -> web.Response:
    """The confirmation page: a GET never unsubscribes (link scanners fetch URLs)."""
    found = _verified(request)
    if isinstance(found, web.Response):
        return found
    return _page(
        200,
        "Unsubscribe",
        f"Unsubscribe {found.member} from the list {found.fqdn_listname}?",
        form=True,
    )


@requires(TOKEN)
async def one_click(request: web.Request) -> web.Response:
    """RFC 8058 §3.2: the POST that unsubscribes, at once."""
    found = _verified(request)
    if isinstance(found, web.Response):
        return found
    try:
        form = await request.post()
    except (ValueError, AssertionError, HttpProcessingError):  # a malformed multipart body
        form = None
    if form is None or form.get(_FORM_KEY) != _FORM_VALUE:
        return _page(
            400, "Bad request", f"An unsubscribe request carries the form field {POST_VALUE}."
        )
    services = request.app[SERVICES]
    try:
        mailman = services.mailman()
        if mailman is None:
            raise MailmanError("no [mailman] section")
        outcome = await mailman.unsubscribe(found.list_id, found.member)
    except MailwrightError as exc:  # MailmanError, or its password file unreadable
        services.logger.event("error", what="unsubscribe", reason=str(exc))
        return _page(
            503, "Try again later", "The list server cannot be reached; please try again later."
        )
    services.logger.event(
        "unsubscribed", list=found.fqdn_listname, to=f"<{found.member}>", outcome=outcome
    )
    if outcome == "removed" and services.tracking is not None:
        event = Event(
            "unsubscribed",
            time.time(),
            recipient=found.member,
            details={"list": found.fqdn_listname, "via": "one-click"},
        )
        try:
            await services.tracking.record([event])
        except (QueueError, OSError) as exc:  # the member is gone either way
            services.logger.event("error", what="events", reason=str(exc))
    texts = {
        "removed": f"{found.member} is no longer subscribed to {found.fqdn_listname}.",
        "not-member": f"{found.member} is not subscribed to {found.fqdn_listname}.",
        "pending": f"Your request to leave {found.fqdn_listname} is waiting for the list's"
        " confirmation.",
    }
    return _page(200, "Unsubscribed", texts[outcome])
