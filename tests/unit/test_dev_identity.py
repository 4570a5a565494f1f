"""The embedded rung's development identity provider: `chuhai-platform token` and `keys`,
the key set served over real HTTP, and tokens verified through it the way the services
verify them (UrlKeySet + TokenVerifier)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import jwt
import pytest

from launcher.cli import dashboard_login_url, main
from launcher.identity import (
    DISCOVERY_PATH,
    DevelopmentIdentityProvider,
    development_issuer,
    development_keys,
    identity_environment,
)
from runtime.adapters.auth import TokenVerifier, UrlKeySet
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import service_tokens_from
from runtime.kernel import errors
from runtime.kernel.identity import Principal, Role


@pytest.fixture(autouse=True)
def _default_auth_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens with the defaults, whatever the shell running the tests exports."""
    for name in ("AUTH_ISSUER", "AUTH_AUDIENCE", "AUTH_ROLE_CLAIM", "AUTH_PARTY_CLAIM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[DevelopmentIdentityProvider]:
    """The provider `chuhai-platform run` starts, for the key pair under tmp_path/var."""
    served = DevelopmentIdentityProvider(
        development_keys(tmp_path / "var"), Settings().auth_issuer, port=0
    )
    await served.start()
    yield served
    await served.stop()


def verifier_for(provider: DevelopmentIdentityProvider) -> TokenVerifier:
    """What a service's settings give it on this rung (verifier_from with AUTH_JWKS_URL)."""
    settings = Settings()
    return TokenVerifier(
        UrlKeySet(provider.jwks_url),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        service_issuer=settings.auth_service_issuer,
    )


def token_command(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    assert main(["token", *args, "--var-dir", str(tmp_path / "var")]) == 0
    return capsys.readouterr().out.strip()


@pytest.mark.parametrize(
    ("role", "party", "subject"),
    [
        (Role.EXPORTER, "91410000MA44XKRN1X", "exporter-91410000MA44XKRN1X"),
        (Role.BUYER, "b-0001", "buyer-b-0001"),
        (Role.OPERATOR, "op-xuchang", "operator-op-xuchang"),
        (Role.OFFICER, "", "officer"),
        (Role.SERVICE, "expo", "expo"),
    ],
)
async def test_token_command_signs_a_token_the_served_key_set_verifies(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    provider: DevelopmentIdentityProvider,
    role: Role,
    party: str,
    subject: str,
) -> None:
    args = [role.value, *(["--party", party] if party else [])]
    token = token_command(capsys, tmp_path, *args)
    principal = await verifier_for(provider).verify(token)
    assert principal == Principal(subject=subject, role=role, party=party)


async def test_an_unregistered_buyer_token_has_no_party_and_its_own_subject(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, provider: DevelopmentIdentityProvider
) -> None:
    verifier = verifier_for(provider)
    first = await verifier.verify(token_command(capsys, tmp_path, "buyer"))
    second = await verifier.verify(token_command(capsys, tmp_path, "buyer"))
    assert first.role is Role.BUYER and first.party == ""
    assert first.subject != second.subject
    # After registration the same subject gets a token bound to its buyer id.
    bound = token_command(capsys, tmp_path, "buyer", "--subject", first.subject, "--party", "b-9")
    assert await verifier.verify(bound) == Principal(first.subject, Role.BUYER, "b-9")


async def test_token_lifetime_follows_ttl_hours(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = token_command(capsys, tmp_path, "officer", "--ttl-hours", "0.5")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["nbf"] == 1800
    assert claims["iss"] == "chuhai-development" and claims["aud"] == "chuhai"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["exporter"], "give --party with its credit code"),
        (["operator"], "give --party with its operator id"),
        (["service"], "give --party with the service's name"),
        (["officer", "--party", "x"], "an officer acts for no party"),
        (["officer", "--ttl-hours", "0"], "--ttl-hours must be positive"),
        (["visitor"], "invalid choice"),
    ],
)
def test_token_command_refuses_what_it_cannot_sign_with_usage_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as refused:
        main(["token", *args, "--var-dir", str(tmp_path / "var")])
    assert refused.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""
    # Refusing made no key pair either.
    assert not (tmp_path / "var" / "identity").exists()


async def test_provider_serves_the_key_set_and_discovery(
    tmp_path: Path, provider: DevelopmentIdentityProvider
) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(provider.jwks_url) as response:
            assert response.status == 200
            served = await response.json()
        async with session.get(provider.base_url + DISCOVERY_PATH) as response:
            discovery = await response.json()
    assert served == json.loads((tmp_path / "var" / "identity" / "jwks.json").read_text())
    (key,) = served["keys"]
    assert key["kid"] == provider.keys.key_id and "d" not in key
    assert discovery == {
        "issuer": "chuhai-development",
        "jwks_uri": provider.jwks_url,
        "id_token_signing_alg_values_supported": ["ES256"],
    }


async def test_services_sign_their_own_tokens_with_the_development_key(
    provider: DevelopmentIdentityProvider,
) -> None:
    # What the launcher hands each service: AUTH_SERVICE_KEY_FILE = the development key.
    settings = Settings(auth_service_key_file=str(provider.keys.signing_key_file))
    tokens = service_tokens_from(settings, "expo")
    assert tokens is not None
    principal = await verifier_for(provider).verify(tokens())
    assert principal == Principal("expo", Role.SERVICE, "expo")


async def test_a_token_from_another_key_is_refused(
    tmp_path: Path, provider: DevelopmentIdentityProvider
) -> None:
    stranger = development_issuer(development_keys(tmp_path / "other"), Settings())
    token = stranger.issue(Principal("officer", Role.OFFICER))
    with pytest.raises(errors.Unauthenticated):
        await verifier_for(provider).verify(token)


async def test_dashboard_link_carries_an_officer_token_for_twelve_hours(
    provider: DevelopmentIdentityProvider,
) -> None:
    settings = Settings(bureau_web_port=18080)
    url = dashboard_login_url(settings, development_issuer(provider.keys, settings))
    prefix = "http://127.0.0.1:18080/login?token="
    assert url.startswith(prefix)
    token = url.removeprefix(prefix)
    assert await verifier_for(provider).verify(token) == Principal("officer", Role.OFFICER)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["nbf"] == 12 * 3600


def test_key_pair_is_made_once_reused_and_private(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first = jwt.get_unverified_header(token_command(capsys, tmp_path, "officer"))["kid"]
    key_file = tmp_path / "var" / "identity" / "signing-key.pem"
    made = key_file.read_bytes()
    second = development_keys(tmp_path / "var")
    assert second.key_id == first
    assert key_file.read_bytes() == made
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_keys_command_makes_a_pair_for_the_services_user(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "identity"
    owner = f"{os.getuid()}:{os.getgid()}"
    assert main(["keys", "--dir", str(target), "--owner", owner]) == 0
    printed = capsys.readouterr().out
    key_id = development_keys(tmp_path).key_id
    assert f"key id       {key_id}" in printed
    assert stat.S_IMODE((target / "signing-key.pem").stat().st_mode) == 0o600
    assert json.loads((target / "jwks.json").read_text())["keys"][0]["kid"] == key_id
    with pytest.raises(SystemExit) as refused:
        main(["keys", "--dir", str(target), "--owner", "chuhai"])
    assert refused.value.code == 2


# The environment the launcher gives the services ------------------------------------


def test_without_a_provider_the_services_use_the_development_one(tmp_path: Path) -> None:
    keys = development_keys(tmp_path)
    added = identity_environment({}, keys, "http://127.0.0.1:9470/jwks", "chuhai-development")
    assert added == {
        "AUTH_ISSUER": "chuhai-development",
        "AUTH_JWKS_URL": "http://127.0.0.1:9470/jwks",
        "AUTH_SERVICE_KEY_FILE": str(keys.signing_key_file),
    }


def test_the_operators_provider_url_stays_and_the_service_key_is_trusted_beside_it(
    tmp_path: Path,
) -> None:
    keys = development_keys(tmp_path)
    environ = {"AUTH_JWKS_URL": "https://sso.example/certs", "AUTH_ISSUER": "https://sso.example"}
    assert identity_environment(environ, keys, "", "https://sso.example") == {
        "AUTH_JWKS_FILE": str(keys.key_set_file),
        "AUTH_SERVICE_KEY_FILE": str(keys.signing_key_file),
    }


def test_the_operators_own_keys_are_left_alone(tmp_path: Path) -> None:
    keys = development_keys(tmp_path)
    own_file = {"AUTH_JWKS_FILE": "/etc/chuhai/jwks.json"}
    assert identity_environment(own_file, keys, "", "chuhai-development") == {}
    own_key = {"AUTH_SERVICE_KEY_FILE": "/etc/chuhai/key.pem"}
    added = identity_environment(own_key, keys, "http://127.0.0.1:1/jwks", "chuhai-development")
    assert "AUTH_SERVICE_KEY_FILE" not in added and added["AUTH_JWKS_URL"]
