"""Authentication and function-level authorization of every public RPC.

A call carries ``authorization: Bearer <JWT>`` in its metadata. The token is checked
the way an identity provider's tokens are: signature against a key set (asymmetric
algorithms only), issuer, audience, expiry and not-before with a bounded clock skew.
Its principal (role, subject, the party it acts for) then meets the service's access
table: which roles may call which method. Missing or bad tokens get UNAUTHENTICATED,
a role the method is not for gets PERMISSION_DENIED, a principal over its rate gets
RESOURCE_EXHAUSTED with a retry hint. Health and reflection stay open for probes.

The use case then decides object by object (its own firm, its own intents) with the
principal from ``caller()``; a request field never names who is calling."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import grpc
import jwt

from runtime.adapters.grpc_handlers import rewrap
from runtime.adapters.settings import Settings
from runtime.kernel import errors
from runtime.kernel.identity import Principal, Role

log = logging.getLogger(__name__)

AUTHORIZATION = "authorization"
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "EdDSA",
)

# Open to anyone: Kubernetes probes and grpcurl-like tools need them without a token.
OPEN_SERVICES = frozenset({"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"})

Access = Mapping[str, frozenset[Role]]
"""A service's access table: each RPC method name and the roles that may call it."""

EVERYONE = frozenset(Role)


def roles(*allowed: Role) -> frozenset[Role]:
    return frozenset(allowed)


_CALLER: contextvars.ContextVar[Principal] = contextvars.ContextVar("chuhai_caller")


def caller() -> Principal:
    """The authenticated principal of the call being served."""
    try:
        return _CALLER.get()
    except LookupError:
        # A servicer reached without the interceptor: a wiring bug, never the caller's.
        raise RuntimeError("no authenticated caller: is the AuthInterceptor installed?") from None


# Key sets ------------------------------------------------------------------------------


class KeySet(Protocol):
    async def key(self, key_id: str | None) -> jwt.PyJWK:
        """The public key named ``key_id``; Unauthenticated when there is none."""
        ...


class _Keys:
    """Parsed keys by id, shared by the file and URL key sets."""

    def __init__(self) -> None:
        self.by_id: dict[str | None, jwt.PyJWK] = {}

    def load(self, document: Mapping[str, Any]) -> None:
        key_set = jwt.PyJWKSet.from_dict(dict(document))
        self.by_id = {k.key_id: k for k in key_set.keys}
        if len(self.by_id) == 1:
            # A token without a kid may use the one key there is.
            self.by_id[None] = next(iter(key_set.keys))

    def find(self, key_id: str | None) -> jwt.PyJWK | None:
        return self.by_id.get(key_id)


class FileKeySet:
    """A JWKS document on disk (a mounted Secret or ConfigMap), read again when it
    changes: rotating keys means replacing the file."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._keys = _Keys()
        self._seen: tuple[int, int] | None = None

    async def key(self, key_id: str | None) -> jwt.PyJWK:
        self._reload_if_changed()
        found = self._keys.find(key_id)
        if found is None:
            raise errors.Unauthenticated(f"token signed with an unknown key {key_id!r}")
        return found

    def _reload_if_changed(self) -> None:
        stat = self._path.stat()
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._keys.load(json.loads(self._path.read_text()))
            self._seen = seen


class UrlKeySet:
    """An identity provider's JWKS endpoint, fetched at first use, again every
    ``refresh_seconds``, and at once (at most every ``min_refresh_seconds``) when a
    token names a key not seen yet: that is how a provider's key rotation arrives."""

    def __init__(
        self, url: str, *, refresh_seconds: float = 300.0, min_refresh_seconds: float = 10.0
    ) -> None:
        self._url = url
        self._refresh_seconds = refresh_seconds
        self._min_refresh_seconds = min_refresh_seconds
        self._keys = _Keys()
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    async def key(self, key_id: str | None) -> jwt.PyJWK:
        if time.monotonic() - self._fetched_at > self._refresh_seconds:
            await self._refresh()
        found = self._keys.find(key_id)
        if found is None and time.monotonic() - self._fetched_at > self._min_refresh_seconds:
            await self._refresh()
            found = self._keys.find(key_id)
        if found is None:
            if not self._keys.by_id:
                raise errors.Unavailable("the identity provider's key set cannot be read")
            raise errors.Unauthenticated(f"token signed with an unknown key {key_id!r}")
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                timeout = aiohttp.ClientTimeout(total=5)
                async with (
                    aiohttp.ClientSession(timeout=timeout) as session,
                    session.get(self._url) as response,
                ):
                    response.raise_for_status()
                    self._keys.load(await response.json(content_type=None))
            except (aiohttp.ClientError, TimeoutError, ValueError, jwt.PyJWKSetError) as error:
                # Keep the keys already known: a provider's brief outage must not lock
                # everybody out.
                log.warning("key set not refreshed", extra={"url": self._url, "error": str(error)})
            finally:
                self._fetched_at = time.monotonic()


class CombinedKeySet:
    """Keys from several sources: the provider's for people, a file for services."""

    def __init__(self, sources: Sequence[KeySet]) -> None:
        self._sources = tuple(sources)

    async def key(self, key_id: str | None) -> jwt.PyJWK:
        failure: errors.DomainError | None = None
        for source in self._sources:
            try:
                return await source.key(key_id)
            except (errors.Unauthenticated, errors.Unavailable) as error:
                failure = error
        raise failure or errors.Unauthenticated("no key set configured")


# Verification --------------------------------------------------------------------------


class TokenVerifier:
    """Turns a bearer token into its principal, or says precisely why it cannot."""

    CACHE_SIZE = 50_000

    def __init__(
        self,
        keys: KeySet,
        *,
        issuer: str,
        audience: str,
        service_issuer: str = "",
        leeway_seconds: float = 30.0,
        algorithms: Iterable[str] = ASYMMETRIC_ALGORITHMS,
        role_claim: str = "chuhai_role",
        party_claim: str = "chuhai_party",
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._service_issuer = service_issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._algorithms = frozenset(algorithms) & frozenset(ASYMMETRIC_ALGORITHMS)
        self._role_claim = role_claim
        self._party_claim = party_claim
        # Verified tokens until they expire: a signature check per call would be the
        # costliest step of a small request.
        self._verified: OrderedDict[str, tuple[Principal, float]] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires = cached
            if time.time() < expires + self._leeway:
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        claims = await self._claims(token)
        principal = self._principal(claims)
        self._verified[token] = (principal, float(claims["exp"]))
        if len(self._verified) > self.CACHE_SIZE:
            self._verified.popitem(last=False)
        return principal

    async def _claims(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise errors.Unauthenticated("the bearer token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self._algorithms:
            raise errors.Unauthenticated(f"token algorithm {algorithm!r} is not accepted")
        key = await self._keys.key(header.get("kid"))
        issuers = [i for i in (self._issuer, self._service_issuer) if i]
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=issuers,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthenticated("token expired") from None
        except jwt.ImmatureSignatureError:
            raise errors.Unauthenticated("token not valid yet (nbf/iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise errors.Unauthenticated(f"token not addressed to {self._audience!r}") from None
        except jwt.InvalidIssuerError:
            raise errors.Unauthenticated("token from an issuer not trusted here") from None
        except jwt.InvalidSignatureError:
            raise errors.Unauthenticated("token signature does not verify") from None
        except jwt.MissingRequiredClaimError as error:
            raise errors.Unauthenticated(f"token lacks the {error.claim!r} claim") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise errors.Unauthenticated("token cannot be verified") from None

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise errors.Unauthenticated("token has no subject")
        role = role_in(claim_at(claims, self._role_claim))
        if role is None:
            raise errors.PermissionDenied(
                f"token carries no Chuhai role in {self._role_claim!r} "
                f"(one of {', '.join(r.value for r in Role)})"
            )
        if (
            self._service_issuer
            and claims.get("iss") == self._service_issuer
            and role is not Role.SERVICE
        ):
            # Services sign their own tokens; they may only speak as services.
            raise errors.Unauthenticated("a service issuer's token must have the service role")
        party = claim_at(claims, self._party_claim)
        return Principal(subject=subject, role=role, party=party if isinstance(party, str) else "")


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """A claim by dotted path, e.g. ``realm_access.roles`` in a Keycloak token."""
    found: Any = claims
    for part in path.split("."):
        if not isinstance(found, Mapping):
            return None
        found = found.get(part)
    return found


def role_in(value: Any) -> Role | None:
    """The Chuhai role a claim names: a string, or the first known one in a list."""
    candidates = value if isinstance(value, list) else [value]
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                return Role(candidate)
            except ValueError:
                continue
    return None


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The token of an ``authorization: Bearer`` metadata entry."""
    for name, value in metadata or ():
        if name == AUTHORIZATION:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise errors.Unauthenticated("authorization must be 'Bearer <token>'")
            return token.strip()
    raise errors.Unauthenticated("missing bearer token (authorization metadata)")


# Rate limits ---------------------------------------------------------------------------


class PrincipalRateLimiter:
    """A token bucket per principal: ``rate`` calls a second, bursts of ``burst``.
    Services are not limited here: they call on behalf of callers already limited."""

    MAX_TRACKED = 200_000

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._clock = clock
        self._buckets: OrderedDict[tuple[Role, str], tuple[float, float]] = OrderedDict()

    def take(self, principal: Principal) -> None:
        if principal.role is Role.SERVICE:
            return
        key = (principal.role, principal.subject)
        now = self._clock()
        tokens, at = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - at) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self._rate
            raise errors.ResourceExhausted(
                f"more than {self._rate:g} calls a second from {principal.audit_name}; "
                f"retry in {wait:.2f} s",
                retry_after_seconds=wait,
            )
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > self.MAX_TRACKED:
            self._buckets.popitem(last=False)


# The interceptor -----------------------------------------------------------------------


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call to a bound service, applies its access table and the
    rate limit, and makes the principal the call's ``caller()``. A method missing from
    its service's table is refused: new RPCs are closed until someone opens them."""

    def __init__(
        self,
        verifier: TokenVerifier,
        access: Mapping[str, Access],
        limiter: PrincipalRateLimiter | None = None,
    ) -> None:
        self._verifier = verifier
        self._access = access
        self._limiter = limiter

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")
        if handler is None or service in OPEN_SERVICES:
            return handler
        if not (handler.unary_unary or handler.unary_stream):
            # Client and bidirectional streams are not part of any Chuhai API: closed.
            return None
        allowed = self._access.get(service, {}).get(method, frozenset())
        return rewrap(
            handler,
            unary=lambda behaviour: self._guard_unary(behaviour, allowed, method),
            stream=lambda behaviour: self._guard_stream(behaviour, allowed, method),
        )

    async def admit(
        self,
        metadata: Sequence[tuple[str, str | bytes]] | None,
        allowed: frozenset[Role],
        method: str,
    ) -> Principal:
        """The principal of a call, once it may make it."""
        principal = await self._verifier.verify(bearer_token(metadata))
        if principal.role not in allowed:
            raise errors.PermissionDenied(f"{method} is not for the {principal.role.value} role")
        if self._limiter is not None:
            self._limiter.take(principal)
        return principal

    def _guard_unary(
        self, behaviour: Callable[..., Awaitable[Any]], allowed: frozenset[Role], method: str
    ) -> Callable[..., Awaitable[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> Any:
            principal = await self.admit(context.invocation_metadata(), allowed, method)
            token = _CALLER.set(principal)
            try:
                return await behaviour(request, context)
            finally:
                _CALLER.reset(token)

        return guarded

    def _guard_stream(
        self, behaviour: Callable[..., AsyncIterator[Any]], allowed: frozenset[Role], method: str
    ) -> Callable[..., AsyncIterator[Any]]:
        async def guarded(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            principal = await self.admit(context.invocation_metadata(), allowed, method)
            # Each call runs in its own task and so its own context: no reset needed,
            # and an async generator may resume in a copy of it, where reset would fail.
            _CALLER.set(principal)
            async for response in behaviour(request, context):
                yield response

        return guarded


def verifier_from(settings: Settings) -> TokenVerifier:
    """The verifier a service's settings describe; a service without any key set
    refuses to start rather than serve without authentication."""
    sources: list[KeySet] = []
    if settings.auth_jwks_url:
        sources.append(
            UrlKeySet(settings.auth_jwks_url, refresh_seconds=settings.auth_jwks_refresh_seconds)
        )
    if settings.auth_jwks_file:
        sources.append(FileKeySet(Path(settings.auth_jwks_file)))
    if not sources:
        raise RuntimeError("set AUTH_JWKS_URL or AUTH_JWKS_FILE: every call is authenticated")
    return TokenVerifier(
        sources[0] if len(sources) == 1 else CombinedKeySet(sources),
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        service_issuer=settings.auth_service_issuer,
        leeway_seconds=settings.auth_leeway_seconds,
        algorithms=[a.strip() for a in settings.auth_algorithms.split(",") if a.strip()],
        role_claim=settings.auth_role_claim,
        party_claim=settings.auth_party_claim,
    )
