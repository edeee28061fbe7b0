"""The status page in a real browser: Debian's Chromium, headless, driven by Selenium
through chromium-driver. Log in, see a queued message, hold and release it, see a bounce
event appear, add and remove a suppression; a Subject with ``<script>`` shows as text.
A screenshot of each page is saved (``$MAILWRIGHT_SCREENSHOTS`` or the test's tmp
directory) and listed at the end.
"""

from __future__ import annotations

import os
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from mailwright.testing.api import PAGE_PASSWORD, ApiServer, start_api_server
from mailwright.testing.ports import HOST

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SUBJECT = "Invoice <script>document.title='owned'</script>"


class _Relay(socketserver.StreamRequestHandler):
    """A next hop that refuses ``bounce*`` recipients for good (550) and everyone else
    for now (451): one message bounces, the others stay queued."""

    def handle(self) -> None:
        self.wfile.write(b"220 relay.test ESMTP\r\n")
        while line := self.rfile.readline(4096):
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                reply = b"250 relay.test"
            elif verb == b"RCPT":
                refused = b"<bounce" in line.lower()
                reply = b"550 5.1.1 no such user" if refused else b"451 4.3.0 try later"
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            elif verb == b"DATA":
                reply = b"554 5.5.1 no valid recipients"
            else:
                reply = b"250 ok"
            self.wfile.write(reply + b"\r\n")


@pytest.fixture(scope="module")
def relay() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer((HOST, 0), _Relay)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, relay: int) -> Iterator[ApiServer]:
    running = start_api_server(tmp_path_factory.mktemp("browser"), relay_port=relay)
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    where = os.environ.get("MAILWRIGHT_SCREENSHOTS")
    directory = Path(where) if where else tmp_path_factory.mktemp("screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    yield directory
    print("\nscreenshots:\n" + "\n".join(f"  {p}" for p in sorted(directory.glob("*.png"))))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(check: Callable[[], bool], timeout: float = 30) -> None:
    """Until ``check()`` holds (a page still loading counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except WebDriverException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.2)


def row_of(driver: WebDriver, queue_id: str) -> object:
    return driver.find_element(By.XPATH, f"//section[@id='queue']//tr[td/a[text()='{queue_id}']]")


def click(driver: WebDriver, scope: object, label: str) -> None:
    scope.find_element(By.XPATH, f".//button[normalize-space()='{label}']").click()  # type: ignore[attr-defined]


def test_operator_session(server: ApiServer, browser: WebDriver, shots: Path) -> None:
    driver = browser
    driver.get(server.base + "/")
    assert driver.current_url.endswith("/login")
    driver.save_screenshot(str(shots / "01-login.png"))
    driver.find_element(By.ID, "password").send_keys(PAGE_PASSWORD)
    driver.find_element(By.XPATH, "//button[text()='Log in']").click()
    # the click returns before the POST's redirect has loaded: wait for it
    wait_for(lambda: driver.current_url == server.base + "/", timeout=15)
    session = driver.get_cookie("mw_session")
    assert session is not None and session["httpOnly"] and session["secure"]
    assert session["sameSite"] == "Strict"

    server.json(
        "POST",
        "/v1/messages",
        {"from": "shop@example.com", "to": ["bounce-me@example.net"], "subject": "b", "text": "x"},
    )
    # a queued message, with a Subject that tries to run script
    status, sent = server.json(
        "POST",
        "/v1/messages",
        {"from": "shop@example.com", "to": ["ann@example.net"], "subject": SUBJECT, "text": "x"},
    )
    assert status == 202
    queue_id = sent["queue_id"]
    driver.get(server.base + "/")
    row = row_of(driver, queue_id)
    assert SUBJECT in row.text  # type: ignore[attr-defined]
    assert driver.title != "owned" and driver.execute_script("return document.scripts.length") == 0
    driver.save_screenshot(str(shots / "02-queue.png"))

    # hold and release it
    click(driver, row, "Hold")
    wait_for(lambda: f"{queue_id} held" in driver.find_element(By.TAG_NAME, "main").text, 10)
    driver.save_screenshot(str(shots / "03-held.png"))
    assert server.json("GET", f"/v1/messages/{queue_id}", key="read")[1]["held"]
    click(driver, driver, "Release")
    wait_for(lambda: "released" in driver.find_element(By.TAG_NAME, "main").text, 10)
    assert not server.json("GET", f"/v1/messages/{queue_id}", key="read")[1]["held"]
    driver.get(server.base + "/?state=held")
    assert queue_id not in driver.find_element(By.ID, "queue").text
    driver.get(server.base + f"/?q={queue_id}")
    assert queue_id in driver.find_element(By.ID, "queue").text

    # a bounce event appears (of a message sent first: the relay's 451s for the other
    # make the agent wait before it tries that destination again)
    def bounced() -> bool:
        driver.get(server.base + "/#events")
        events = driver.find_element(By.ID, "events").text
        return "bounced" in events and "bounce-me@example.net" in events

    try:
        wait_for(bounced)
    except AssertionError:
        raise AssertionError(driver.find_element(By.ID, "events").text) from None
    driver.save_screenshot(str(shots / "04-bounce-event.png"))

    # suppressions: the hard bounce suppressed the address; add and remove one by hand
    suppressions = driver.find_element(By.ID, "suppressions")
    suppressions.find_element(By.NAME, "address").send_keys("manual@example.net")
    suppressions.find_element(By.NAME, "detail").send_keys("asked to stop")
    click(driver, suppressions, "Suppress")
    wait_for(lambda: "Suppressed" in driver.find_element(By.TAG_NAME, "main").text, 10)
    table = driver.find_element(By.ID, "suppressions").text
    assert "manual@example.net" in table and "bounce-me@example.net" in table
    driver.save_screenshot(str(shots / "05-suppressions.png"))
    row = driver.find_element(
        By.XPATH, "//section[@id='suppressions']//tr[td[text()='manual@example.net']]"
    )
    click(driver, row, "Remove")
    wait_for(lambda: "Removed" in driver.find_element(By.TAG_NAME, "main").text, 10)
    assert "manual@example.net" not in driver.find_element(By.ID, "suppressions").text

    # the message page shows the header, as text
    driver.get(server.base + f"/ui/messages/{queue_id}")
    assert "Subject:" in driver.find_element(By.TAG_NAME, "pre").text
    driver.save_screenshot(str(shots / "06-message.png"))

    # readable on a phone: nothing wider than the screen
    driver.set_window_size(390, 844)
    driver.get(server.base + "/")
    overflow = driver.execute_script(
        "return document.documentElement.scrollWidth - window.innerWidth"
    )
    driver.save_screenshot(str(shots / "07-phone.png"))
    assert overflow <= 0

    # log out: the page is gone
    driver.set_window_size(1280, 1000)
    click(driver, driver, "Log out")
    # as with logging in, the click returns before the POST's answer (it clears the
    # cookie) has loaded; navigating away at once could abort it
    wait_for(lambda: driver.current_url.endswith("/login"), timeout=15)
    driver.get(server.base + "/")
    assert driver.current_url.endswith("/login")
    assert len(list(shots.glob("*.png"))) >= 7
