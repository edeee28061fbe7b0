"""The status page over plain HTTP (the browser tests drive it in Chromium): login,
session cookie flags, CSRF on every form, escaping of sender-controlled text, and no
page without a session."""

from __future__ import annotations

import http.client
import re
import smtplib
import urllib.parse
from collections.abc import Iterator

import pytest

from mailwright.testing.api import PAGE_PASSWORD, ApiServer, start_api_server
from mailwright.testing.ports import HOST

pytestmark = pytest.mark.integration

XSS = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    running = start_api_server(tmp_path_factory.mktemp("page"))
    yield running
    assert running.stop() == 0


class Browser:
    """Just enough of a browser: cookies (Secure ones too: this is a test over loopback)."""

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def go(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str, list[str]]:
        conn = http.client.HTTPConnection(HOST, self.server.http_port, timeout=30)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        set_cookies = resp.headers.get_all("Set-Cookie") or []
        for line in set_cookies:
            name, _, rest = line.partition("=")
            value = rest.split(";")[0]
            if value in ("", '""'):
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        text = resp.read().decode()
        conn.close()
        return resp.status, dict(resp.headers), text, set_cookies

    def csrf(self, page: str) -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', page)
        assert match, page
        return match.group(1)

    def login(self, password: str = PAGE_PASSWORD) -> int:
        _, _, page, _ = self.go("GET", "/login")
        status, _, _, _ = self.go("POST", "/login", {"csrf": self.csrf(page), "password": password})
        return status


def test_pages_need_a_session(server: ApiServer) -> None:
    browser = Browser(server)
    for method, path in [
        ("GET", "/"),
        ("GET", "/ui/messages/2KZZPRKPEAS2YW"),
        ("POST", "/ui/messages/2KZZPRKPEAS2YW/hold"),
        ("POST", "/ui/suppressions"),
        ("POST", "/ui/suppressions/remove"),
        ("POST", "/ui/doctor"),
        ("POST", "/logout"),
    ]:
        status, headers, _, _ = browser.go(method, path, {} if method == "POST" else None)
        assert (status, headers.get("Location")) == (303, "/login"), (method, path)


def test_login_sets_strict_cookie_and_wrong_password_fails(server: ApiServer) -> None:
    browser = Browser(server)
    assert browser.login("wrong password") == 401
    assert "mw_session" not in browser.cookies
    _, _, page, _ = browser.go("GET", "/login")
    status, headers, _, cookies = browser.go(
        "POST", "/login", {"csrf": browser.csrf(page), "password": PAGE_PASSWORD}
    )
    assert status == 303 and headers["Location"] == "/"
    session = next(c for c in cookies if c.startswith("mw_session="))
    for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
        assert flag.lower() in session.lower()
    status, headers, page, _ = browser.go("GET", "/")
    assert status == 200 and "Queue" in page
    assert "script-src" not in headers["Content-Security-Policy"]  # no script at all
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_admin_key_logs_in_other_keys_do_not(server: ApiServer) -> None:
    assert Browser(server).login(server.keys["admin"]) == 303
    assert Browser(server).login(server.keys["send"]) == 401


def test_login_form_needs_its_csrf_token(server: ApiServer) -> None:
    browser = Browser(server)
    browser.go("GET", "/login")
    status, _, _, _ = browser.go("POST", "/login", {"csrf": "forged", "password": PAGE_PASSWORD})
    assert status == 403 and "mw_session" not in browser.cookies


def test_every_form_needs_the_csrf_token(server: ApiServer) -> None:
    browser = Browser(server)
    assert browser.login() == 303
    _, sent = server.json(
        "POST", "/v1/messages", {"from": "a@example.com", "to": "b@example.net", "text": "x"}
    )
    queue_id = sent["queue_id"]
    for path, form in [
        (f"/ui/messages/{queue_id}/hold", {}),
        ("/ui/suppressions", {"address": "c@example.net"}),
        ("/ui/suppressions/remove", {"address": "c@example.net"}),
        ("/ui/doctor", {}),
        ("/logout", {}),
    ]:
        for token in (None, "0" * 64):
            sent_form = dict(form) if token is None else {**form, "csrf": token}
            status, _, body, _ = browser.go("POST", path, sent_form)
            assert status == 403 and "CSRF" in body, path
    _, message = server.json("GET", f"/v1/messages/{queue_id}", key="read")
    assert not message["held"]


def test_sender_controlled_text_is_escaped(server: ApiServer) -> None:
    with smtplib.SMTP(HOST, server.smtp_port, timeout=10) as smtp:
        smtp.sendmail(
            "app@example.com",
            ["victim@example.net"],
            f"From: {XSS} <app@example.com>\r\nSubject: {XSS}\r\n"
            f"X-Evil: {XSS}\r\n\r\nx\r\n".encode(),
        )
    status, sent = server.json(
        "POST",
        "/v1/messages",
        {
            "from": "app@example.com",
            "to": ["x@example.net"],
            "subject": XSS,
            "text": "x",
            "tags": [XSS.replace(",", "")],
            "headers": {"X-Evil": XSS},
        },
    )
    assert status == 202
    browser = Browser(server)
    browser.login()
    _, _, page, _ = browser.go("GET", "/")
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    _, _, detail, _ = browser.go("GET", f"/ui/messages/{sent['queue_id']}")
    assert "<script>" not in detail and "&lt;script&gt;" in detail
    _, _, filtered, _ = browser.go("GET", "/?q=" + urllib.parse.quote(XSS))
    assert "<script>" not in filtered


def test_hold_release_and_suppressions_with_token(server: ApiServer) -> None:
    browser = Browser(server)
    browser.login()
    _, sent = server.json(
        "POST", "/v1/messages", {"from": "a@example.com", "to": "h@example.net", "text": "x"}
    )
    queue_id = sent["queue_id"]
    _, _, page, _ = browser.go("GET", f"/ui/messages/{queue_id}")
    status, _, _, _ = browser.go(
        "POST", f"/ui/messages/{queue_id}/hold", {"csrf": browser.csrf(page)}
    )
    assert status == 303
    assert server.json("GET", f"/v1/messages/{queue_id}", key="read")[1]["held"]
    browser.go("POST", f"/ui/messages/{queue_id}/release", {"csrf": browser.csrf(page)})
    assert not server.json("GET", f"/v1/messages/{queue_id}", key="read")[1]["held"]
    browser.go("POST", "/ui/suppressions", {"csrf": browser.csrf(page), "address": "s@example.net"})
    _, listed = server.json("GET", "/v1/suppressions?address=s@example.net")
    assert len(listed["suppressions"]) == 1
    browser.go(
        "POST", "/ui/suppressions/remove", {"csrf": browser.csrf(page), "address": "s@example.net"}
    )
    _, listed = server.json("GET", "/v1/suppressions?address=s@example.net")
    assert listed["suppressions"] == []
