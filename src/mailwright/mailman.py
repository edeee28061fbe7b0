"""Mailman 3 behind mailwright: which addresses are list addresses, and Mailman's side.

Mailman core owns the lists; we are its MTA. Mail for a list address is accepted at
RCPT only when the list exists (asked of Mailman's REST API, the answer kept for
``cache_seconds``) and is handed to Mailman over LMTP (:mod:`mailwright.delivery.lmtp`).
Mailman sends its own mail back to us on a trusted submission listener.

The list addresses of a list ``team@lists.example`` (Mailman 3's address scheme):
the posting address itself and ``team-bounces`` (with VERP: ``team-bounces+member=
domain``), ``team-confirm+TOKEN``, ``team-join``, ``team-leave``, ``team-owner``,
``team-request``, ``team-subscribe`` and ``team-unsubscribe``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import MailwrightError

__all__ = [
    "LIST_SUFFIXES",
    "ListAddress",
    "ListCache",
    "MailmanError",
    "MailmanRest",
    "list_address",
    "mta_section",
    "unanswerable",
]

LIST_SUFFIXES = (
    "bounces",
    "confirm",
    "join",
    "leave",
    "owner",
    "request",
    "subscribe",
    "unsubscribe",
)
"""Mailman 3's sub-addresses of a list (``mailman.mta``)."""
_WITH_EXTENSION = ("bounces", "confirm")
"""Only these take a ``+`` extension: VERP'd bounces and confirmation tokens."""


MAX_ANSWER_BYTES = 32 * 1024 * 1024
"""A REST answer larger than this is refused (the list of lists of a very large site is a
few MB; nothing legitimate comes near it)."""


class MailmanError(MailwrightError):
    """Mailman's REST API could not be asked (down, refused, wrong password)."""


@dataclass(frozen=True, slots=True)
class ListAddress:
    """``address`` belongs to ``fqdn_listname`` in the role ``role`` ("post" or a suffix)."""

    fqdn_listname: str
    role: str
    extension: str = ""


def _candidates(address: str) -> Iterator[ListAddress]:
    """The readings of ``address`` as a list address, whichever lists exist: the posting
    address ``name@domain`` first, then ``name-SUFFIX[+extension]@domain``."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return
    domain = domain.lower().rstrip(".")
    base, plus, extension = local.lower().partition("+")
    if not plus:
        yield ListAddress(f"{base}@{domain}", "post")
    for suffix in LIST_SUFFIXES:
        if not base.endswith("-" + suffix):
            continue
        name = base[: -len(suffix) - 1]
        if not name:
            continue
        if plus and (suffix not in _WITH_EXTENSION or not extension):
            continue  # team-join+x, team-confirm+ (no token): not Mailman's
        if suffix == "confirm" and not plus:
            continue  # a confirmation needs its token
        yield ListAddress(f"{name}@{domain}", suffix, extension)


def list_address(address: str, exists: Callable[[str], bool | None]) -> ListAddress | None:
    """Which list ``address`` belongs to, if any (``exists(fqdn_listname)`` asks Mailman;
    only a list it says yes to counts)."""
    return next((c for c in _candidates(address) if exists(c.fqdn_listname) is True), None)


def unanswerable(address: str, exists: Callable[[str], bool | None]) -> bool:
    """``address`` has the shape of a list address, and whether its list exists cannot
    be known now (``exists`` answers None: Mailman's REST API is not answering)."""
    return any(exists(c.fqdn_listname) is None for c in _candidates(address))


class MailmanRest:
    """Mailman's REST API (basic auth): what we ask of it and the one change we make.

    Every failure to get an answer (down, refused, wrong password, not JSON) is a
    :class:`MailmanError`."""

    def __init__(self, rest_url: str, user: str, password: str, *, timeout: float = 10.0) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.user = user
        self.password = password
        self.timeout = timeout

    async def get(self, path: str) -> dict[str, Any]:
        """GET a REST resource (``lists``, ``lists/ID/roster/member``) as JSON."""
        status, body, url = await self.request("GET", path)
        if status != 200:
            raise MailmanError(f"Mailman REST {url}: HTTP {status}")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            raise MailmanError(f"Mailman REST {url}: not JSON") from None
        if not isinstance(data, dict):
            raise MailmanError(f"Mailman REST {url}: unexpected answer")
        return data

    async def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, bytes, str]:
        """One call: the HTTP status, the body and the URL (for messages)."""
        import aiohttp

        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        url = f"{self.rest_url}/{path.lstrip('/')}"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.request(
                    method, url, data=form, headers={"Authorization": f"Basic {token}"}
                ) as response,
            ):
                pieces: list[bytes] = []
                size = 0
                async for piece in response.content.iter_chunked(64 * 1024):
                    size += len(piece)
                    if size > MAX_ANSWER_BYTES:
                        raise MailmanError(
                            f"Mailman REST {url}: answer over {MAX_ANSWER_BYTES} bytes"
                        )
                    pieces.append(piece)
                return response.status, b"".join(pieces), url
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise MailmanError(f"Mailman REST {url}: {exc or type(exc).__name__}") from None

    async def unsubscribe(self, list_id: str, address: str) -> str:
        """Remove the member ``address`` of ``list_id`` at once (RFC 8058 one-click).

        ``DELETE lists/LIST_ID/member/ADDRESS`` with ``pre_confirmed`` and
        ``pre_approved``: Mailman neither asks the member to confirm nor holds the
        request for the list's moderators (the link already proved the member's
        mailbox, and RFC 8058 §3.2 wants no further step). Returns ``"removed"``,
        ``"not-member"`` (already gone: the same page for a second click) or
        ``"pending"`` (Mailman still wants a confirmation: a Mailman that ignores the
        flags)."""
        path = f"lists/{quote(list_id, safe='')}/member/{quote(address, safe='@')}"
        status, _, url = await self.request(
            "DELETE", path, {"pre_confirmed": "true", "pre_approved": "true"}
        )
        if status in (200, 204):
            return "removed"
        if status == 404:
            return "not-member"
        if status == 202:
            return "pending"
        raise MailmanError(f"Mailman REST DELETE {url}: HTTP {status}")


class ListCache(MailmanRest):
    """The lists Mailman has, as of at most ``max_age`` seconds ago.

    :meth:`exists` answers at once from the last answer (RCPT cannot wait for HTTP on
    every address); a stale answer starts a refresh in the background. :meth:`refresh`
    asks now (the server does once at start).

    The answer is three-valued, so that Mailman being down is never taken for "no such
    list" (a permanent ``550`` for mail that a minute later would be accepted): a list
    named in Mailman's last answer exists (its mail is queued and retried over LMTP
    while Mailman is down); another name does not, while that answer is good; if Mailman
    never answered, or its last answer failed and the good one is older than
    ``max_age``, the answer is None (unknown: ``451`` at RCPT).
    """

    def __init__(
        self,
        rest_url: str,
        user: str,
        password: str,
        *,
        max_age: float = 30.0,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(rest_url, user, password, timeout=timeout)
        self.max_age = max_age
        self.clock = clock
        self.names: frozenset[str] = frozenset()
        self.fetched_at: float | None = None
        """When Mailman was last asked (answered or not)."""
        self.answered_at: float | None = None
        """When Mailman last answered."""
        self.error: str | None = None
        """Why the last question failed (None: it was answered)."""
        self._task: asyncio.Task[None] | None = None

    def exists(self, fqdn_listname: str) -> bool | None:
        """True, False, or None when Mailman cannot say now (see the class docstring)."""
        now = self.clock()
        if self.fetched_at is None or now - self.fetched_at > self.max_age:
            self._refresh_soon()
        if fqdn_listname.lower() in self.names:
            return True
        if self.answered_at is None:
            return None
        if self.error is not None and now - self.answered_at > self.max_age:
            return None
        return False

    def _refresh_soon(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        with contextlib.suppress(MailmanError):
            await self.refresh()

    async def refresh(self) -> frozenset[str]:
        """Ask Mailman for every list now; on failure keep the old answer and raise."""
        try:
            names = _list_names(await self.get("lists"))
        except MailmanError as exc:
            self.error = str(exc)
            self.fetched_at = self.clock()  # do not hammer a Mailman that is down
            raise
        self.names = names
        self.fetched_at = self.answered_at = self.clock()
        self.error = None
        return self.names


def _list_names(answer: dict[str, Any]) -> frozenset[str]:
    """The ``fqdn_listname`` of each entry of Mailman's ``GET lists`` (no ``entries``:
    no lists); anything else is not Mailman's answer (a proxy's, another API's)."""
    entries = answer.get("entries", [])
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("fqdn_listname"), str) for e in entries
    ):
        raise MailmanError("Mailman REST lists: not a list of lists with fqdn_listname")
    return frozenset(e["fqdn_listname"].lower() for e in entries)


def read_password(path: Path) -> str:
    """The REST password: the first line of its file (kept out of the config file)."""
    return path.read_text("utf-8").splitlines()[0].strip() if path.stat().st_size else ""


def mta_section(*, smtp_host: str, smtp_port: int, lmtp_host: str, lmtp_port: int) -> str:
    """The ``[mta]`` section of ``mailman.cfg`` that makes mailwright Mailman's MTA.

    ``incoming`` is Mailman's null MTA module: we ask the REST API which lists exist, so
    Mailman writes no Postfix maps; ``outgoing`` delivers over SMTP to our trusted
    submission listener, which DKIM-signs.
    """
    return (
        "[mta]\n"
        "incoming: mailman.mta.null.NullMTA\n"
        "outgoing: mailman.mta.deliver.deliver\n"
        f"lmtp_host: {lmtp_host}\n"
        f"lmtp_port: {lmtp_port}\n"
        f"smtp_host: {smtp_host}\n"
        f"smtp_port: {smtp_port}\n"
    )
