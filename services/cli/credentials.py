"""Who the command line calls as: a bearer token (a JWT from the bureau's identity
provider) from --token, else CHUHAI_TOKEN, else the file `chuhai login` saved. The
token names the role and the firm, buyer or operator acted for; the services verify
it on every call. Here it is only read, never verified: `whoami` shows what it says."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import typer

from runtime.adapters.auth import claim_at, role_in
from runtime.adapters.settings import Settings
from runtime.kernel.identity import Role

TOKEN_ENV = "CHUHAI_TOKEN"
TOKEN_OPTION = "--token"


@dataclass(frozen=True)
class Token:
    """A bearer token and where it came from (the option, the variable, or the file)."""

    value: str
    source: str


def token_file() -> Path:
    """Where `chuhai login` keeps the token: the user's configuration directory
    ($XDG_CONFIG_HOME/chuhai/token on Linux, else ~/.config/chuhai/token)."""
    return Path(typer.get_app_dir("chuhai")) / "token"


def find_token(given: str = "") -> Token | None:
    """The token to call with: ``given`` (--token), else CHUHAI_TOKEN, else the saved one."""
    if given.strip():
        return Token(given.strip(), TOKEN_OPTION)
    from_env = os.environ.get(TOKEN_ENV, "").strip()
    if from_env:
        return Token(from_env, TOKEN_ENV)
    path = token_file()
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        return None
    return Token(saved, str(path)) if saved else None


def save_token(token: str) -> Path:
    """Save ``token`` for later commands, readable by its owner only (it is a password
    for as long as it lives)."""
    path = token_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written under another name with its mode from the start, then renamed: no moment
    # where the token is in a file others can read, nor half a token.
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    os.chmod(partial, 0o600)
    partial.replace(path)
    return path


def forget_token() -> Path | None:
    """Remove the saved token; the file's path if there was one."""
    path = token_file()
    try:
        path.unlink()
    except FileNotFoundError:
        return None
    return path


class NotAToken(ValueError):
    """The text is not a JWT (three base64url parts with JSON claims)."""


@dataclass(frozen=True)
class Claims:
    """What a token says about its bearer, read without verifying it."""

    subject: str
    role: str
    party: str
    issuer: str
    audience: str
    expires_at: datetime | None

    @property
    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at.timestamp() <= time.time()

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "role": self.role,
            "party": self.party,
            "issuer": self.issuer,
            "audience": self.audience,
            "expires_at": self.expires_at.isoformat() if self.expires_at else "",
            "expired": self.expired,
        }


def read_claims(token: str) -> Claims:
    """The claims of ``token`` at the claim paths the services read (AUTH_ROLE_CLAIM,
    AUTH_PARTY_CLAIM). Not verified: only a service can tell a genuine token."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.InvalidTokenError as error:
        raise NotAToken(f"not a JWT: {error}") from None
    settings = Settings()
    audience = claims.get("aud", "")
    expires = claims.get("exp")
    return Claims(
        subject=str(claims.get("sub", "")),
        role=_role_name(role_in(claim_at(claims, settings.auth_role_claim))),
        party=str(claim_at(claims, settings.auth_party_claim) or ""),
        issuer=str(claims.get("iss", "")),
        audience=", ".join(audience) if isinstance(audience, list) else str(audience),
        expires_at=(
            datetime.fromtimestamp(expires, UTC) if isinstance(expires, int | float) else None
        ),
    )


def _role_name(role: Role | None) -> str:
    return role.value if role is not None else ""
