"""Issuing tokens: the development identity provider of the embedded rung, and the
short-lived tokens a service signs for its own calls to other services.

The embedded rung has no identity provider, so the platform makes a key pair under
``var/identity/`` on first start (never committed) and publishes its public half as a
JSON Web Key Set; services verify every token against a key set exactly as they would
against the bureau's own provider. Production tokens come from that provider; only
the service-to-service tokens are signed here, with the service's own key."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes as PrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from runtime.adapters.settings import Settings
from runtime.kernel.identity import Principal, Role

# Asymmetric and quick to sign: 127 exporters, 68,000 buyers and every service call of
# the demo get tokens.
DEVELOPMENT_ALGORITHM = "ES256"
SIGNING_KEY_FILE = "signing-key.pem"
KEY_SET_FILE = "jwks.json"


class TokenIssuer:
    """Signs JWTs for principals with one private key."""

    def __init__(
        self,
        private_key_pem: bytes,
        *,
        issuer: str,
        audience: str,
        role_claim: str = "chuhai_role",
        party_claim: str = "chuhai_party",
        algorithm: str = DEVELOPMENT_ALGORITHM,
        key_id: str = "",
    ) -> None:
        """``key_id`` defaults to the key's thumbprint, as in the key sets made here."""
        self._key = serialization.load_pem_private_key(private_key_pem, password=None)
        self._key_id = key_id or public_jwk(self._key)["kid"]
        self._issuer = issuer
        self._audience = audience
        self._role_claim = role_claim
        self._party_claim = party_claim
        self._algorithm = algorithm

    def issue(
        self, principal: Principal, *, ttl_seconds: float = 3600, not_before: float | None = None
    ) -> str:
        now = time.time()
        claims: dict[str, object] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": principal.subject,
            "iat": int(now),
            "nbf": int(now if not_before is None else not_before),
            "exp": int(now + ttl_seconds),
            "jti": uuid.uuid4().hex,
        }
        _set_claim(claims, self._role_claim, principal.role.value)
        if principal.party:
            _set_claim(claims, self._party_claim, principal.party)
        return jwt.encode(
            claims, self._key, algorithm=self._algorithm, headers={"kid": self._key_id}
        )


class ServiceTokens:
    """The bearer token a service presents to the services it calls: its own name as
    subject and party, role service, renewed well before it expires."""

    LIFETIME_SECONDS = 600.0
    RENEW_BEFORE_SECONDS = 120.0

    def __init__(self, issuer: TokenIssuer, service: str) -> None:
        self._issuer = issuer
        self._principal = Principal(subject=service, role=Role.SERVICE, party=service)
        self._token = ""
        self._renew_at = 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if now >= self._renew_at:
            self._token = self._issuer.issue(self._principal, ttl_seconds=self.LIFETIME_SECONDS)
            self._renew_at = now + self.LIFETIME_SECONDS - self.RENEW_BEFORE_SECONDS
        return self._token


@dataclass(frozen=True)
class DevelopmentKeys:
    """The embedded rung's key pair: a private key to sign with, its key set to verify."""

    directory: Path
    key_id: str

    @property
    def signing_key_file(self) -> Path:
        return self.directory / SIGNING_KEY_FILE

    @property
    def key_set_file(self) -> Path:
        return self.directory / KEY_SET_FILE

    @classmethod
    def ensure(cls, directory: Path) -> DevelopmentKeys:
        """The key pair under ``directory``, made on first use (private key 0600)."""
        directory.mkdir(parents=True, exist_ok=True)
        key_file = directory / SIGNING_KEY_FILE
        if not key_file.exists():
            private = ec.generate_private_key(ec.SECP256R1())
            pem = private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            # Written under another name and renamed: a crash never leaves half a key.
            partial = directory / f".{SIGNING_KEY_FILE}.partial"
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
            partial.replace(key_file)
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        jwk = public_jwk(private)
        key_id = jwk["kid"]
        key_set = {"keys": [{**jwk, "use": "sig", "alg": DEVELOPMENT_ALGORITHM}]}
        (directory / KEY_SET_FILE).write_text(json.dumps(key_set, indent=2) + "\n")
        return cls(directory, key_id)

    def issuer(self, *, issuer: str, audience: str) -> TokenIssuer:
        return TokenIssuer(self.signing_key_file.read_bytes(), issuer=issuer, audience=audience)


# The members of each key type a thumbprint covers (RFC 7638).
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def public_jwk(private_key: PrivateKey) -> dict[str, str]:
    """The public half of a private key as a JWK, with its thumbprint as key id."""
    public = private_key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = json.loads(RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = json.loads(ECAlgorithm.to_jwk(public))
    else:
        jwk = json.loads(OKPAlgorithm.to_jwk(public))
    return {**jwk, "kid": _thumbprint(jwk)}


def _thumbprint(jwk: dict[str, str]) -> str:
    """The RFC 7638 thumbprint of a public key, the usual key id."""
    members = _THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _set_claim(claims: dict[str, object], path: str, value: str) -> None:
    """Sets a claim by the dotted path the verifier reads it from."""
    *parents, name = path.split(".")
    for parent in parents:
        claims = claims.setdefault(parent, {})  # type: ignore[assignment]
    claims[name] = value


def service_tokens_from(settings: Settings, service: str) -> ServiceTokens | None:
    """The tokens ``service`` presents to other services, if it has a key to sign with."""
    if not settings.auth_service_key_file:
        return None
    issuer = TokenIssuer(
        Path(settings.auth_service_key_file).read_bytes(),
        key_id=settings.auth_service_key_id,
        algorithm=settings.auth_service_algorithm,
        issuer=settings.auth_service_issuer,
        audience=settings.auth_audience,
        role_claim=settings.auth_role_claim,
        party_claim=settings.auth_party_claim,
    )
    return ServiceTokens(issuer, service)
