"""The embedded rung's development identity provider.

`chuhai-platform run` has no identity provider to lean on, so it makes a key pair under
``var/identity/`` (runtime.adapters.tokens.DevelopmentKeys) and publishes its public half
over HTTP the way a provider does: the services fetch it from AUTH_JWKS_URL through the
same code as in production, and sign their own service tokens with the private half.
`chuhai-platform token` signs tokens for people with the same key."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DEVELOPMENT_ALGORITHM, DevelopmentKeys, TokenIssuer
from runtime.kernel.identity import Principal, Role

log = logging.getLogger(__name__)

# Loopback only: the key set is public, but nothing outside this machine needs it.
DEV_IDENTITY_HOST = "127.0.0.1"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"
# Roles whose tokens must name the party they act for (a buyer registers without one).
PARTY_REQUIRED = {
    Role.EXPORTER: "its credit code",
    Role.OPERATOR: "its operator id",
    Role.SERVICE: "the service's name",
}


def development_keys(var_dir: Path) -> DevelopmentKeys:
    """The key pair under ``var_dir/identity``, made on first use."""
    return DevelopmentKeys.ensure(var_dir / "identity")


def development_issuer(keys: DevelopmentKeys, settings: Settings) -> TokenIssuer:
    """Signs tokens the services configured by ``settings`` accept: their issuer,
    audience and claim names."""
    return TokenIssuer(
        keys.signing_key_file.read_bytes(),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        role_claim=settings.auth_role_claim,
        party_claim=settings.auth_party_claim,
    )


def principal_for(role: Role, party: str = "", subject: str = "") -> Principal:
    """The principal a development token names; ValueError says what is missing.

    Without a subject: the service's or officer's usual one, the party's otherwise, and
    a fresh one for an unregistered buyer (who keeps it after registration)."""
    if role in PARTY_REQUIRED and not party:
        raise ValueError(
            f"{role.value} tokens act for a party: give --party with {PARTY_REQUIRED[role]}"
        )
    if role is Role.OFFICER and party:
        raise ValueError("an officer acts for no party: leave out --party")
    if not subject:
        if role is Role.SERVICE:
            subject = party
        elif role is Role.OFFICER:
            subject = "officer"
        elif party:
            subject = f"{role.value}-{party}"
        else:
            subject = f"{role.value}-{uuid.uuid4().hex[:12]}"
    return Principal(subject=subject, role=role, party=party)


def identity_environment(
    environ: Mapping[str, str], keys: DevelopmentKeys, jwks_url: str, issuer: str
) -> dict[str, str]:
    """The auth settings the services get on this rung, for what ``environ`` leaves unset.

    Without AUTH_JWKS_URL or AUTH_JWKS_FILE the development provider at ``jwks_url`` is
    the services' provider. The development key also signs the services' own tokens
    (AUTH_SERVICE_KEY_FILE) whenever it is trusted: through that provider, or, when the
    operator's provider is a URL, through AUTH_JWKS_FILE beside it."""
    uses_operator_provider = "AUTH_JWKS_URL" in environ or "AUTH_JWKS_FILE" in environ
    added: dict[str, str] = {}
    if not uses_operator_provider:
        added["AUTH_ISSUER"] = issuer
        added["AUTH_JWKS_URL"] = jwks_url
        added["AUTH_SERVICE_KEY_FILE"] = str(keys.signing_key_file)
    elif "AUTH_JWKS_FILE" not in environ and "AUTH_SERVICE_KEY_FILE" not in environ:
        added["AUTH_JWKS_FILE"] = str(keys.key_set_file)
        added["AUTH_SERVICE_KEY_FILE"] = str(keys.signing_key_file)
    return {name: value for name, value in added.items() if name not in environ}


def needs_development_provider(environ: Mapping[str, str]) -> bool:
    """Whether no identity provider of the operator's is configured."""
    return "AUTH_JWKS_URL" not in environ and "AUTH_JWKS_FILE" not in environ


@dataclass
class DevelopmentIdentityProvider:
    """Serves the development key set and a minimal OpenID discovery document."""

    keys: DevelopmentKeys
    issuer: str
    host: str = DEV_IDENTITY_HOST
    port: int = 0
    _runner: web.AppRunner | None = None
    _key_set: dict[str, object] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def jwks_url(self) -> str:
        return self.base_url + JWKS_PATH

    async def start(self) -> None:
        """Listens on ``port`` (0: any free port, then ``port`` is the one taken)."""
        self._key_set = json.loads(self.keys.key_set_file.read_text())
        app = web.Application()
        app.router.add_get(JWKS_PATH, self._jwks)
        app.router.add_get(DISCOVERY_PATH, self._discovery)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        self.port = int(self._runner.addresses[0][1])
        log.info("development identity provider ready", extra={"jwks_url": self.jwks_url})

    async def _jwks(self, _: web.Request) -> web.Response:
        return web.json_response(self._key_set)

    async def _discovery(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "jwks_uri": self.jwks_url,
                "id_token_signing_alg_values_supported": [DEVELOPMENT_ALGORITHM],
            }
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
