"""The people the demo plays, each calling with a token of its own: the bureau's
officer, every exporter, every buyer who sends an intent, the warehouse operator, and
the expo's web front end recording visits. A token is minted on a principal's first
call and reused (renewed before it expires), so a play signs a few thousand tokens,
not one per call."""

from __future__ import annotations

import time
from collections.abc import Callable

from runtime.adapters.tokens import TokenIssuer
from runtime.kernel.identity import Principal, Role

Metadata = tuple[tuple[str, str], ...]

OFFICER = Principal(subject="xuchang-commerce-bureau-officer", role=Role.OFFICER)
# The expo's web front end records the visits of many buyers in one batch: a service,
# not any one buyer.
EXPO_WEB = Principal(subject="expo-web", role=Role.SERVICE, party="expo-web")
OPERATOR_ID = "henan-overseas-logistics"


class Credentials:
    """Call metadata carrying each principal's bearer token."""

    LIFETIME_SECONDS = 3600.0
    # Well before expiry: a call made just before renewal still arrives in time.
    RENEW_BEFORE_SECONDS = 300.0

    def __init__(self, issuer: TokenIssuer, clock: Callable[[], float] = time.monotonic) -> None:
        self._issuer = issuer
        self._clock = clock
        self._minted: dict[Principal, tuple[Metadata, float]] = {}

    def of(self, principal: Principal) -> Metadata:
        now = self._clock()
        held = self._minted.get(principal)
        if held is None or now >= held[1]:
            token = self._issuer.issue(principal, ttl_seconds=self.LIFETIME_SECONDS)
            renew_at = now + self.LIFETIME_SECONDS - self.RENEW_BEFORE_SECONDS
            held = ((("authorization", f"Bearer {token}"),), renew_at)
            self._minted[principal] = held
        return held[0]

    def officer(self) -> Metadata:
        return self.of(OFFICER)

    def expo_web(self) -> Metadata:
        return self.of(EXPO_WEB)

    # Subjects are fixed per party, so a replay is made by the same people as the play.

    def exporter(self, credit_code: str) -> Metadata:
        return self.of(
            Principal(subject=f"exporter-{credit_code}", role=Role.EXPORTER, party=credit_code)
        )

    def buyer(self, buyer_id: str) -> Metadata:
        return self.of(Principal(subject=f"buyer-{buyer_id}", role=Role.BUYER, party=buyer_id))

    def operator(self, operator_id: str) -> Metadata:
        return self.of(
            Principal(subject=f"operator-{operator_id}", role=Role.OPERATOR, party=operator_id)
        )
