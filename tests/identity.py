"""Tokens for tests: any principal, signed by the session's development key pair,
which the services under test trust (see the ``settings`` fixture)."""

from __future__ import annotations

import uuid

import grpc

from runtime.adapters.grpc_client import service_channel
from runtime.adapters.tokens import DevelopmentKeys, TokenIssuer
from runtime.kernel.identity import Principal, Role

TEST_ISSUER = "chuhai-tests"
TEST_AUDIENCE = "chuhai"

Metadata = tuple[tuple[str, str], ...]


class Identities:
    """Issues tokens and authorised channels for the principals a test plays."""

    def __init__(self, keys: DevelopmentKeys) -> None:
        self.keys = keys
        self.issuer: TokenIssuer = keys.issuer(issuer=TEST_ISSUER, audience=TEST_AUDIENCE)

    def token(
        self, role: Role, party: str = "", *, subject: str = "", ttl_seconds: float = 3600
    ) -> str:
        principal = Principal(
            subject=subject or f"{role.value}-{party or uuid.uuid4().hex[:8]}",
            role=role,
            party=party,
        )
        return self.issuer.issue(principal, ttl_seconds=ttl_seconds)

    def metadata(self, role: Role, party: str = "", *, subject: str = "") -> Metadata:
        """Call metadata carrying a fresh token, for ``stub.Method(request, metadata=...)``."""
        return (("authorization", f"Bearer {self.token(role, party, subject=subject)}"),)

    def channel(
        self, target: str, role: Role, party: str = "", *, subject: str = ""
    ) -> grpc.aio.Channel:
        """A channel whose every call is made as this principal."""
        token = self.token(role, party, subject=subject)
        return service_channel(target, token=lambda: token)

    # The principals most tests play.

    def officer(self) -> Metadata:
        return self.metadata(Role.OFFICER, subject="officer-1")

    def exporter(self, credit_code: str) -> Metadata:
        return self.metadata(Role.EXPORTER, credit_code)

    def buyer(self, buyer_id: str = "") -> Metadata:
        return self.metadata(Role.BUYER, buyer_id)

    def operator(self, operator_id: str) -> Metadata:
        return self.metadata(Role.OPERATOR, operator_id)

    def service(self, name: str) -> Metadata:
        return self.metadata(Role.SERVICE, name, subject=name)
