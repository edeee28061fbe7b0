"""A ``mailwright serve`` with an ``http`` listener and one API key per scope, for the
API tests, the browser tests and ``bench/api``."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..apikeys import SCOPES, hash_key, new_key
from ..smtp.auth import hash_password
from .ports import HOST, free_port, wait_for_port
from .serve import start_serve, stop_serve, write_config

PAGE_PASSWORD = "status-page-password"


@dataclass
class ApiServer:
    proc: subprocess.Popen[bytes]
    config: Path
    base: str
    """``http://127.0.0.1:PORT``"""
    smtp_port: int
    http_port: int
    keys: dict[str, str]
    """Scope → a key with only that scope (``admin``: every scope)."""

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "admin",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request (urllib: no client library of our own); status, headers, body."""
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {self.keys.get(key, key)}")
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def stop(self) -> int:
        return stop_serve(self.proc)


def start_api_server(
    directory: Path,
    *,
    workers: int = 1,
    extra: str = "",
    http: str = "",
    relay_port: int | None = None,
) -> ApiServer:
    """A server of ``example.com`` whose deliveries go to a relay at ``relay_port`` (by
    default a port nobody listens on, so messages stay queued and deferred). ``extra``:
    top-level settings and tables; ``http``: lines of its ``[http]`` table."""
    smtp_port, http_port = free_port(), free_port()
    config = write_config(
        directory, smtp_port, relay_port=relay_port or free_port(), workers=workers
    )
    keys = {scope: new_key() for scope in SCOPES}
    blocks = [
        f'[[api_keys]]\nname = "{scope}-key"\nhash = "{hash_key(key)}"\nscopes = ["{scope}"]\n'
        for scope, key in keys.items()
    ]
    text = config.read_text()
    head, sep, tail = text.partition("[[listeners]]")
    config.write_text(
        head
        + extra
        + f'\n[http]\npassword_hash = "{hash_password(PAGE_PASSWORD, ln=10)}"\n{http}\n'
        + "\n".join(blocks)
        + f'\n[[listeners]]\nname = "http"\naddress = "{HOST}"\nport = {http_port}\n'
        + 'role = "http"\n\n'
        + sep
        + tail
    )
    # the server's output goes to a file: a pipe nobody reads would fill and block it
    with (directory / "serve.out").open("wb") as output:
        proc = start_serve(smtp_port, config=config, output=output)
    if not wait_for_port(http_port, 30, HOST):
        stop_serve(proc)
        raise RuntimeError(f"no http listener on {HOST}:{http_port}")
    return ApiServer(proc, config, f"http://{HOST}:{http_port}", smtp_port, http_port, keys)
