"""Who may call the expo service, over real gRPC: every method against every role (the
function level), and the expo's own calls to booth and warehouse made as the expo
service, not as its caller. Which objects a caller may touch is tested on the use cases
(tests/unit/test_expo_handlers.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

import expo.grpc_api
from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.expo.v1 import expo_service_pb2 as pb
from chuhai.expo.v1 import expo_service_pb2_grpc as pb_grpc
from chuhai.expo.v1 import resources_pb2 as res
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys
from runtime.kernel.identity import Role
from tests.conftest import Infrastructure, settings_for
from tests.credit_codes import random_credit_code
from tests.identity import Identities, Metadata
from tests.integration.test_booth import register_exporters
from tests.integration.test_expo import (
    HAIR,
    fair_with_booths,
    in_days,
    join,
    open_edition,
    register_buyer,
    running_platform,
)

SERVICE = pb.DESCRIPTOR.services_by_name["ExpoService"]
EVERY_ROLE = frozenset(Role)
OFFICER, EXPORTER, BUYER, SERVICE_ROLE = Role.OFFICER, Role.EXPORTER, Role.BUYER, Role.SERVICE

# The brief's table, written out independently of expo.grpc_api.ACCESS.
EXPECTED: dict[str, frozenset[Role]] = {
    "CreateEdition": frozenset({OFFICER}),
    "OpenEdition": frozenset({OFFICER}),
    "CloseEdition": frozenset({OFFICER}),
    "GetEdition": EVERY_ROLE,
    "JoinEdition": frozenset({EXPORTER}),
    "ListExhibitors": EVERY_ROLE,
    "PublishProduct": frozenset({EXPORTER}),
    "ListProducts": EVERY_ROLE,
    "RegisterBuyer": frozenset({BUYER}),
    "RegisterBuyers": frozenset({OFFICER}),
    "GetBuyer": frozenset({BUYER, EXPORTER, OFFICER}),
    "RecordVisits": frozenset({SERVICE_ROLE, BUYER}),
    "SubmitIntent": frozenset({BUYER}),
    "RespondToIntent": frozenset({EXPORTER}),
    "CloseIntent": frozenset({BUYER}),
    "GetIntent": frozenset({BUYER, EXPORTER, OFFICER}),
    "ListIntents": frozenset({BUYER, EXPORTER, OFFICER}),
}


def test_the_access_table_covers_exactly_the_services_methods() -> None:
    assert set(expo.grpc_api.ACCESS) == set(SERVICE.methods_by_name)
    assert dict(expo.grpc_api.ACCESS) == EXPECTED


def principal_metadata(identities: Identities, role: Role) -> Metadata:
    """A token for a typical principal of ``role`` (a registered buyer, for a buyer)."""
    match role:
        case Role.OFFICER:
            return identities.officer()
        case Role.EXPORTER:
            return identities.exporter(random_credit_code())
        case Role.BUYER:
            return identities.buyer("buyer-1")
        case Role.OPERATOR:
            return identities.operator("operator-1")
        case Role.SERVICE:
            return identities.service("expo-web")


@pytest.fixture(scope="module")
async def expo_address(infra: Infrastructure, identity_keys: DevelopmentKeys) -> AsyncIterator[str]:
    """One expo service for the whole matrix: every call there is refused or answered
    before it changes anything worth a fresh database. Booth and warehouse are not
    running: no call of the matrix gets as far as asking them."""
    settings = settings_for(infra, identity_keys, uuid.uuid4().hex[:10])
    host = ServiceHost("expo", expo.grpc_api.build, settings)
    await host.start()
    try:
        yield host.server.address
    finally:
        await host.stop()


@pytest.mark.integration
@pytest.mark.parametrize("role", sorted(Role))
@pytest.mark.parametrize("method", sorted(SERVICE.methods_by_name))
async def test_each_method_is_refused_exactly_to_the_roles_outside_its_table(
    expo_address: str, identities: Identities, method: str, role: Role
) -> None:
    descriptor = SERVICE.methods_by_name[method]
    request_type = getattr(pb, descriptor.input_type.name)
    response_type = getattr(pb, descriptor.output_type.name)
    async with grpc.aio.insecure_channel(expo_address) as channel:
        call = channel.unary_unary(
            f"/{SERVICE.full_name}/{method}",
            request_serializer=request_type.SerializeToString,
            response_deserializer=response_type.FromString,
        )
        try:
            # An empty request: refused before or after the use case, never changing
            # anything; what matters here is whether the role got in.
            await call(request_type(), metadata=principal_metadata(identities, role), timeout=10)
            code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            code = error.code()
    if role in EXPECTED[method]:
        assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.integration
async def test_a_call_without_a_token_is_unauthenticated(expo_address: str) -> None:
    async with grpc.aio.insecure_channel(expo_address) as channel:
        stub = pb_grpc.ExpoServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.GetEdition(pb.GetEditionRequest(edition_id="any"), timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.integration
async def test_expo_asks_booth_and_warehouse_as_the_expo_service(
    settings: Settings, identities: Identities, unique: str
) -> None:
    """Booth tells exhibitor status to services only: an exporter's own token is refused,
    yet the exporter joins with its booth through the expo, which asks as itself. The
    fulfilment hint (warehouse) comes the same way. An expo without its signing key
    cannot ask at all."""
    async with running_platform(settings, identities) as platform:
        [code] = await register_exporters(platform.booth, 1, seed=31, identities=identities)
        fair_id = await fair_with_booths(platform, unique, [code], quota=1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await platform.booth.GetExhibitorStatus(
                booth_pb.GetExhibitorStatusRequest(credit_code=code, fair_id=fair_id),
                metadata=identities.exporter(code),
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED

        edition_id = await open_edition(platform, unique, fair_id, online_only=False)
        joined = await join(platform, edition_id, code)
        assert joined.exhibitor.kind == res.EXHIBITOR_KIND_BOOTH
        assert joined.exhibitor.booth_number.startswith("S-")
        buyer = await register_buyer(platform, "Haarmode", "DE")
        submitted = await platform.expo.SubmitIntent(
            pb.SubmitIntentRequest(
                request_id="inquiry",
                edition_id=edition_id,
                kind=res.INTENT_KIND_INQUIRY,
                exhibitor_credit_code=code,
                hs_code=HAIR,
                quantity=300,
                unit="piece",
                incoterm=res.INCOTERM_FOB,
                destination_country="DE",
                deadline=in_days(7),
            ),
            metadata=identities.buyer(buyer.buyer_id),
            timeout=20,
        )
        assert list(submitted.intent.recipients) == [code]
        assert submitted.warehouses_available  # the warehouse service answered the expo

        # The same expo without a key to sign its own tokens: booth refuses to say.
        tokenless = platform.settings.model_copy(update={"auth_service_key_file": ""})
        host = ServiceHost("expo", expo.grpc_api.build, tokenless)
        await host.start()
        try:
            async with grpc.aio.insecure_channel(host.server.address) as channel:
                stub = pb_grpc.ExpoServiceStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as unasked:
                    await stub.JoinEdition(
                        pb.JoinEditionRequest(request_id="j-again", edition_id=edition_id),
                        metadata=identities.exporter(code),
                        timeout=20,
                    )
            assert unasked.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "booth service" in unasked.value.details()
        finally:
            await host.stop()
