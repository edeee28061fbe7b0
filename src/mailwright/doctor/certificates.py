"""The ACME certificate as ``serve`` keeps it (``[tls] acme = true``): issued, renewing,
or failing to renew — read from ``DATA_DIR/certificates``, no network."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from ..certificates.store import CertificateInfo, CertificateStore
from .context import Context
from .model import Finding

FIX_FAILED = (
    "make the name's A/AAAA point here and port 80 reach the http listener, then wait: "
    "serve retries by itself and logs certificate-issued"
)


def _read(ctx: Context) -> tuple[dict[str, Any], CertificateInfo | None]:
    assert ctx.options.acme_data_dir is not None
    store = CertificateStore(ctx.options.acme_data_dir)
    return store.status(), store.current_info()


async def check_acme(ctx: Context) -> Finding:
    status, info = await asyncio.to_thread(_read, ctx)
    failures = int(status.get("failures") or 0)
    now = datetime.datetime.now(datetime.UTC)
    kept = (
        f"serving the old certificate (expires {info.not_after:%Y-%m-%d %H:%M} UTC)"
        if info is not None and info.not_after > now
        else "serving no valid certificate"
    )
    if failures:
        return Finding.fail(
            f"renewal failed {failures} time(s) in a row: {status.get('reason')}; {kept}",
            FIX_FAILED,
        )
    if info is None:
        return Finding.warn(
            "no certificate issued yet (a self-signed placeholder is served)",
            "start 'mailwright serve'; it requests one at once",
        )
    days = (info.not_after - now).total_seconds() / 86400
    if days < ctx.options.cert_min_days:
        return Finding.warn(
            f"expires in {days:.1f} days and was not renewed", "look for certificate-failed"
        )
    return Finding.ok(
        f"{', '.join(info.names)}: expires {info.not_after:%Y-%m-%d}, "
        f"renewal due {info.renew_at():%Y-%m-%d}"
    )
