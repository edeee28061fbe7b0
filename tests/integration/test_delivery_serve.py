"""The whole path as a user runs it: the application submits to ``mailwright serve``,
which DKIM-signs (RSA-2048 and Ed25519) and delivers directly to the recipient
domain's MX — a real Postfix, found through real DNS (NSD) — where OpenDKIM verifies
both signatures. Then the same through a relay that requires STARTTLS and AUTH.
"""

from __future__ import annotations

import smtplib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_delivery_postfix import strip_postfix_headers
from test_delivery_relay import PASSWORD_URL, USER, RelayHandler
from test_dkim_interop import ORIGIN, opendkim_testmsg_verify  # same directory

from mailwright.dkim import dns_record_value, generate_key, private_key_pem, txt_strings
from mailwright.log import parse_line
from mailwright.testing.nsd import NsdServer
from mailwright.testing.ports import free_port
from mailwright.testing.postfix import PostfixServer
from mailwright.testing.serve import start_serve, stop_serve
from mailwright.testing.tls import CertificateFiles

pytestmark = pytest.mark.integration

MESSAGE = (
    f"From: App <app@{ORIGIN}>\r\n"
    "To: Alice <alice@example.net>\r\n"
    "Subject: End to end\r\n"
    "\r\n"
    "Signed by mailwright serve, delivered by its agent.\r\n"
    ".and a dot line\r\n"
)


def write_config(tmp_path: Path, lines: list[str]) -> tuple[Path, int]:
    port = free_port()
    keys = []
    for selector, algorithm in (("rsa2048", "rsa"), ("ed1", "ed25519")):
        key = generate_key(algorithm, 2048)
        path = tmp_path / f"{selector}.private"
        path.write_bytes(private_key_pem(key))
        keys += [
            "[[dkim]]",
            f'domain = "{ORIGIN}"',
            f'selector = "{selector}"',
            f'private_key = "{path}"',
            f'algorithm = "{algorithm}"',
        ]
    config = tmp_path / "mailwright.toml"
    config.write_text(
        "\n".join(
            [
                f'hostname = "mail.{ORIGIN}"',
                f'data_dir = "{tmp_path / "data"}"',
                "allow_root = true",
                "workers = 1",
                *lines,
                "[[listeners]]",
                'name = "submission"',
                'address = "127.0.0.1"',
                f"port = {port}",
                *keys,
            ]
        )
        + "\n"
    )
    return config, port


def publish_keys(world: NsdServer, tmp_path: Path) -> None:
    from mailwright.dkim import load_private_key

    lines = []
    for selector in ("rsa2048", "ed1"):
        key = load_private_key((tmp_path / f"{selector}.private").read_bytes())
        strings = " ".join(f'"{s}"' for s in txt_strings(dns_record_value(key)))
        lines.append(f"{selector}._domainkey TXT {strings}")
    world.set_zone(ORIGIN, "\n".join(lines) + "\n")


@pytest.fixture
def serve() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        stop_serve(proc, 20)


def start(procs: list[subprocess.Popen[bytes]], config: Path, port: int) -> None:
    procs.append(start_serve(port, config=config, output=subprocess.DEVNULL))


def events(tmp_path: Path, name: str, count: int = 1, timeout: float = 30) -> list[dict[str, str]]:
    log = tmp_path / "data" / "mailwright.log"
    deadline = time.monotonic() + timeout
    found: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        found = [e for e in map(parse_line, text.splitlines()) if e and e["event"] == name]
        if len(found) >= count:
            break
        time.sleep(0.1)
    return found


def test_serve_signs_and_delivers_to_the_postfix_mx(
    tmp_path: Path,
    dns_world: NsdServer,
    postfix_mx: PostfixServer,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    config, port = write_config(
        tmp_path,
        [
            "[dns]",
            f'nameserver = "{dns_world.nameserver}"',
            "[delivery]",
            'mode = "direct"',
            f"outbound_port = {postfix_mx.port}",
        ],
    )
    publish_keys(dns_world, tmp_path)
    dns_world.set_zone("example.net", "@ MX 10 mx\nmx A 127.0.0.1\n")
    start(serve, config, port)
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(f"app@{ORIGIN}", ["alice@example.net"], MESSAGE.encode())
    [delivered] = events(tmp_path, "delivered")
    assert delivered["relay"] == f"mx.example.net[127.0.0.1]:{postfix_mx.port}"
    [signed] = events(tmp_path, "signed")
    assert set(signed["selectors"].split(",")) == {"rsa2048", "ed1"}
    [stored] = postfix_mx.wait_for_messages(1)
    message = strip_postfix_headers(stored)
    assert message.count(b"DKIM-Signature:") == 2
    assert b"\r\n.and a dot line\r\n" in message
    rc, stderr = opendkim_testmsg_verify(dns_world, message, tmp_path)
    assert (rc, stderr) == (0, "")


def test_serve_relays_with_starttls_and_auth(
    tmp_path: Path,
    tls_files: CertificateFiles,
    serve: list[subprocess.Popen[bytes]],
) -> None:
    from aiosmtpd.controller import Controller

    handler = RelayHandler()
    relay_port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=relay_port,
        tls_context=tls_files.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=handler.authenticator,
    )
    controller.start()
    try:
        config, port = write_config(
            tmp_path,
            [
                "[delivery]",
                'mode = "relay"',
                "[delivery.relay]",
                f'url = "smtp://{USER}:{PASSWORD_URL}@localhost:{relay_port}"',
                f'ca_file = "{tls_files.ca}"',
            ],
        )
        start(serve, config, port)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(f"app@{ORIGIN}", ["alice@example.net"], MESSAGE.encode())
        [delivered] = events(tmp_path, "delivered")
        assert delivered["reply"] == "250 2.0.0 Ok: queued as RELAY1"
        [got] = handler.messages
        assert got.tls and got.user == USER
        assert got.data.count(b"DKIM-Signature:") == 2
    finally:
        controller.stop()
