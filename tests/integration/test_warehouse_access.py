"""Function-level access to the warehouse service over real gRPC: every method called
by every role, PERMISSION_DENIED exactly for the roles its ACCESS entry leaves out.

The requests are minimal: an allowed role may well get INVALID_ARGUMENT or NOT_FOUND,
what matters is that the interceptor let it through (no PERMISSION_DENIED and no
UNAUTHENTICATED). The object-level rules (whose warehouse, whose reservation) are
proved by the handler tests in tests/unit/test_warehouse_handlers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf.message import Message

import warehouse.grpc_api
from chuhai.warehouse.v1 import warehouse_service_pb2 as pb
from chuhai.warehouse.v1 import warehouse_service_pb2_grpc as pb_grpc
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.kernel.identity import Role
from tests.credit_codes import random_credit_code
from tests.identity import Identities

pytestmark = pytest.mark.integration

SERVICE = pb.DESCRIPTOR.services_by_name["WarehouseService"]
METHODS = sorted(method.name for method in SERVICE.methods)
# The party each role's token names.
PARTIES = {
    Role.EXPORTER: random_credit_code(),
    Role.BUYER: "buyer-access-1",
    Role.OPERATOR: "operator-access-1",
    Role.OFFICER: "",
    Role.SERVICE: "expo",
}


def minimal_request(method: str) -> Message:
    """The method's request with just a request id: enough to get past the gate."""
    request_type = getattr(pb, SERVICE.methods_by_name[method].input_type.name)
    request = request_type()
    if "request_id" in request.DESCRIPTOR.fields_by_name:
        request.request_id = f"access-{method}"
    return request


# The decided rules (the identity brief), written out again so that a change to
# ACCESS has to be a change to this test too.
DECIDED = {
    "RegisterWarehouse": {Role.OPERATOR},
    "UpdateWarehouse": {Role.OPERATOR},
    "SuspendWarehouse": {Role.OPERATOR, Role.OFFICER},
    "ReactivateWarehouse": {Role.OPERATOR, Role.OFFICER},
    "GetWarehouse": set(Role),
    "SearchWarehouses": set(Role),
    "ReserveCapacity": {Role.EXPORTER},
    "CancelReservation": {Role.EXPORTER, Role.OPERATOR},
    "GetReservation": {Role.EXPORTER, Role.OPERATOR, Role.OFFICER},
    "ListReservations": {Role.EXPORTER, Role.OPERATOR, Role.OFFICER},
    "GetUtilisation": {Role.OPERATOR, Role.OFFICER},
}


def test_the_access_table_covers_exactly_the_services_methods() -> None:
    assert sorted(warehouse.grpc_api.ACCESS) == METHODS
    assert {name: set(allowed) for name, allowed in warehouse.grpc_api.ACCESS.items()} == DECIDED


@pytest.fixture
async def stub(settings: Settings) -> AsyncIterator[pb_grpc.WarehouseServiceStub]:
    host = ServiceHost("warehouse", warehouse.grpc_api.build, settings)
    await host.start()
    try:
        async with grpc.aio.insecure_channel(host.server.address) as channel:
            yield pb_grpc.WarehouseServiceStub(channel)
    finally:
        await host.stop()


async def test_every_method_refuses_exactly_the_roles_outside_its_access_entry(
    stub: pb_grpc.WarehouseServiceStub, identities: Identities
) -> None:
    outcomes: dict[tuple[str, Role], grpc.StatusCode] = {}
    for method in METHODS:
        call = getattr(stub, method)
        for role in Role:
            metadata = identities.metadata(role, PARTIES[role])
            try:
                await call(minimal_request(method), metadata=metadata, timeout=10)
                outcomes[method, role] = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as error:
                outcomes[method, role] = error.code()
    denied = {key for key, code in outcomes.items() if code == grpc.StatusCode.PERMISSION_DENIED}
    expected = {
        (method, role) for method in METHODS for role in Role if role not in DECIDED[method]
    }
    assert denied == expected
    unauthenticated = [k for k, code in outcomes.items() if code == grpc.StatusCode.UNAUTHENTICATED]
    assert unauthenticated == []


async def test_a_call_without_a_token_is_unauthenticated(
    stub: pb_grpc.WarehouseServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await stub.GetWarehouse(pb.GetWarehouseRequest(code="DE-HAM-01"), timeout=10)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
