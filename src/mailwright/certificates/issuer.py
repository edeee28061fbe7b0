"""One certificate order (RFC 8555 §7.4) through certbot's ``acme`` library, HTTP-01.

Blocking (the library uses ``requests``): the manager runs :func:`issue` in a thread.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC

from ..errors import MailwrightError
from ..files import write_atomically
from .store import CertificateStore, private_key_pem

ORDER_TIMEOUT = 90.0
"""Seconds for the CA to validate and issue before the attempt counts as failed."""


class IssuanceError(MailwrightError):
    """The CA did not issue: the message says why, in one line."""


@dataclass(frozen=True)
class AcmeAccount:
    directory: str
    contact: str | None
    ca_file: Path | None


class _Network(client.ClientNetwork):
    """``ClientNetwork`` trusting ``ca_file`` for the CA's HTTPS (a private CA, Pebble)."""

    def __init__(self, key: JWK, ca_file: Path | None) -> None:
        super().__init__(key, alg=ES256, user_agent="mailwright")
        if ca_file is not None:
            # passed on as requests' ``verify``, which takes a CA bundle path as well
            self.verify_ssl = str(ca_file)  # type: ignore[assignment]


def _account_key(store: CertificateStore) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(store.account_key.read_bytes(), None)
    except FileNotFoundError:
        key = ec.generate_private_key(ec.SECP256R1())
        write_atomically(store.account_key, private_key_pem(key))
        return key
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IssuanceError(f"{store.account_key}: not an EC key")
    return key


def issue(store: CertificateStore, account: AcmeAccount, names: tuple[str, ...]) -> bytes:
    """A new key and certificate for ``names``: PEM key followed by the full chain."""
    try:
        return _issue(store, account, names)
    except IssuanceError:
        raise
    except acme_errors.ValidationError as exc:
        reasons = [
            f"{authz.body.identifier.value}: {challenge.error.detail or challenge.error.typ}"
            for authz in exc.failed_authzrs
            for challenge in authz.body.challenges
            if challenge.error is not None
        ]
        raise IssuanceError("challenge failed: " + "; ".join(reasons)) from None
    except messages.Error as exc:
        raise IssuanceError(f"the CA refused: {exc.detail or exc.typ}") from None
    except acme_errors.TimeoutError:
        raise IssuanceError(f"no certificate within {ORDER_TIMEOUT:.0f} s") from None
    except Exception as exc:  # requests' connection errors, bad JSON, ...
        text = " ".join(str(exc).split())
        raise IssuanceError(f"{type(exc).__name__}: {text}"[:400]) from None


def _issue(store: CertificateStore, account: AcmeAccount, names: tuple[str, ...]) -> bytes:
    store.ensure_directories()
    jwk = JWKEC(key=_account_key(store))
    net = _Network(jwk, account.ca_file)
    acme = client.ClientV2(client.ClientV2.get_directory(account.directory, net), net)
    registration = messages.NewRegistration.from_data(
        email=account.contact, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except acme_errors.ConflictError as exc:  # the key has an account already (§7.3.1)
        net.account = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = private_key_pem(key)
    order = acme.new_order(crypto_util.make_csr(key_pem, list(names)))
    tokens: list[str] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # reused authorization (§7.1.3): nothing to prove
            challenge = next(
                (c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)),
                None,
            )
            if challenge is None:
                raise IssuanceError(f"{authz.body.identifier.value}: the CA offers no HTTP-01")
            response, validation = challenge.response_and_validation(jwk)
            token = challenge.chall.encode("token")
            store.put_challenge(token, validation)
            tokens.append(token)
            acme.answer_challenge(challenge, response)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_TIMEOUT)
        order = acme.poll_and_finalize(order, deadline)
    finally:
        for token in tokens:
            store.remove_challenge(token)
    chain = order.fullchain_pem
    if not chain:
        raise IssuanceError("the CA sent no certificate")
    return key_pem + chain.encode()
