"""``mailwright send-test TO``: submit a test message and follow it until it is decided.

The message goes in through SMTP like any application's (so it is signed, queued and
delivered by the real path); the command then reads the server's log file for that
queue ID and stops at the first ``delivered``, ``bounced`` or ``deferred`` event,
printing the remote server's reply. Exit 0 delivered, 1 deferred, bounced or no answer
in time.
"""

from __future__ import annotations

import email.utils
import math
import smtplib
import socket
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.markup import escape

from ..errors import UserError
from ..log import parse_line
from ..queue import QueueError, open_store
from .context import (
    app,
    console,
    emit_json,
    err_console,
    run,
    safe,
    styled,
    submission_address,
)

EPILOG = """\b
Examples:
  mailwright send-test someone@example.net
  mailwright send-test someone@example.net --from app@example.com
  mailwright send-test me@example.com --server 127.0.0.1:2525 --wait 120
  mailwright send-test me@example.com --json
"""

FINAL = {"delivered": "ok", "bounced": "fail", "deferred": "warn", "expired": "fail"}
MAX_WAIT = 86400.0


def _fail(message: str) -> NoReturn:
    """The test failed (the server is down or refused the message): one line, exit 1.

    Not a :class:`UserError`: nothing was mistyped, and exit 2 means a usage mistake.
    """
    line = " ".join(message.split())  # a multi-line SMTP reply, on one line
    err_console.print(f"[bold red]error:[/] {safe(line)}", soft_wrap=True)
    raise SystemExit(1)


def _wait_seconds(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """FloatRange lets NaN through (every comparison with it is false)."""
    if math.isnan(value):
        raise click.BadParameter("nan is not a number of seconds", param_hint="'--wait'")
    return value


def _message(sender: str, to: str, hostname: str) -> bytes:
    now = email.utils.formatdate(localtime=False, usegmt=True)
    lines = [
        f"From: mailwright send-test <{sender}>",
        f"To: <{to}>",
        "Subject: mailwright send-test",
        f"Date: {now}",
        f"Message-ID: {email.utils.make_msgid('sendtest', domain=hostname)}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        f"This is a test message sent by 'mailwright send-test' at {now}.",
        "If you can read it, mail from this server reaches you.",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _submit(host: str, port: int, sender: str, to: str, data: bytes) -> str:
    try:
        with smtplib.SMTP(host, port, timeout=30) as client:
            client.ehlo(socket.getfqdn())
            code, reply = client.mail(sender)
            if code != 250:
                _fail(f"MAIL FROM refused: {code} {reply.decode(errors='replace')}")
            code, reply = client.rcpt(to)
            if code not in (250, 251):
                _fail(f"RCPT TO refused: {code} {reply.decode(errors='replace')}")
            code, reply = client.data(data)
            text = reply.decode(errors="replace")
            if code != 250:
                _fail(f"message refused: {code} {text}")
    except (OSError, smtplib.SMTPException) as exc:
        _fail(f"cannot submit to {host}:{port}: {exc} (is 'mailwright serve' running?)")
    marker = "queued as "
    if marker not in text:
        _fail(f"the server accepted but gave no queue ID: {text}")
    return text.split(marker, 1)[1].split()[0]


def _follow(log_path: Path, queue_id: str, wait: float) -> dict[str, str] | None:
    """The first final event for ``queue_id`` in the log, or None after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    position = 0
    buffer = b""
    while time.monotonic() < deadline:
        try:
            with log_path.open("rb") as f:
                f.seek(position)
                chunk = f.read()
                position = f.tell()
        except FileNotFoundError:
            chunk = b""
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if queue_id.encode() not in line:
                continue
            event = parse_line(line.decode("utf-8", "replace"))
            if event and event.get("id") == queue_id and event["event"] in FINAL:
                return event
        time.sleep(0.2)
    return None


@click.command(epilog=EPILOG)
@click.argument("to")
@click.option("--from", "sender", metavar="ADDRESS", help="Envelope and header sender.")
@click.option("--server", metavar="HOST:PORT", help="Submit here (default: the config's).")
@click.option(
    "--wait",
    type=click.FloatRange(min=0, max=MAX_WAIT),
    default=60.0,
    show_default=True,
    callback=_wait_seconds,
    help="Seconds to follow.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def send_test(to: str, sender: str | None, server: str | None, wait: float, as_json: bool) -> None:
    """Send a test message to TO and follow it until delivered, deferred or bounced."""
    config = app().config
    if "@" not in to:
        raise UserError(f"{to!r} is not an address", "write e.g. you@example.net")
    domain = config.domains[0] if config.domains else config.hostname
    sender = sender or f"mailwright-test@{domain}"
    host, port = submission_address(config, server, "--server")
    queue_id = _submit(host, port, sender, to, _message(sender, to, config.hostname))
    if not as_json:
        console.print(f"queued as [bold]{queue_id}[/] on {host}:{port}; following it ...")
    log_path = config.log.file or config.data_dir / "mailwright.log"
    event = _follow(log_path, queue_id, wait)
    state = None
    if event is None and (config.queue.url or (config.data_dir / "queue.sqlite3").exists()):

        async def look() -> str | None:
            try:  # the queue's state is a detail of the answer: none if unreachable
                store = await open_store(config)
                try:
                    entry = await store.get(queue_id)
                finally:
                    await store.close()
            except QueueError:
                return None
            return None if entry is None else (entry.pending[0].last_reply if entry.pending else "")

        state = run(look())
    if as_json:
        emit_json(
            {
                "id": queue_id,
                "to": to,
                "from": sender,
                "result": event["event"] if event else "unknown",
                "relay": event.get("relay") if event else None,
                "dsn": event.get("dsn") if event else None,
                "reply": event.get("reply") if event else state,
            }
        )
    elif event is None:
        console.print(
            f"{styled('warn')} no delivery result within {wait:g}s"
            + (f"; still queued, last reply: {escape(state)}" if state else "")
            + f" (see 'mailwright queue show {queue_id}')"
        )
    else:
        kind = event["event"]
        console.print(
            f"{styled(FINAL[kind])} {kind} to {escape(event.get('to', to))}"
            f" via {escape(event.get('relay', '?'))}"
            f" in {event.get('delay', '?')}s"
        )
        if event.get("reply"):
            console.print(f"  remote reply: {escape(event['reply'])}")
        if kind == "deferred" and event.get("next_retry"):
            console.print(f"  next retry: {escape(event['next_retry'])}")
    raise SystemExit(0 if event is not None and event["event"] == "delivered" else 1)
