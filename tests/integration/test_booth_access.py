"""Who may call the booth service, over real gRPC: every method against every role
(function level), every way a token can be wrong (authentication), and another firm's
exporters and applications (object level)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import grpc
import pytest

import booth.grpc_api
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import booth_service_pb2_grpc as pb_grpc
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters.service import ServiceHost
from runtime.adapters.settings import Settings
from runtime.adapters.tokens import DevelopmentKeys, TokenIssuer
from runtime.kernel.identity import Principal, Role
from tests.credit_codes import random_credit_code
from tests.identity import TEST_AUDIENCE, TEST_ISSUER, Identities, Metadata
from tests.integration.test_booth import fair_request, register_exporters, submit

pytestmark = pytest.mark.integration

EXPORTER, BUYER, OPERATOR, OFFICER, SERVICE = (
    Role.EXPORTER,
    Role.BUYER,
    Role.OPERATOR,
    Role.OFFICER,
    Role.SERVICE,
)
EVERYONE = frozenset(Role)

# The decided rules (the shared brief), written out here rather than read from
# booth.grpc_api.ACCESS: a wrong table must fail this test, not agree with it.
ALLOWED: dict[str, frozenset[Role]] = {
    "RegisterExporter": frozenset({EXPORTER}),
    "UpdateExporter": frozenset({EXPORTER}),
    "GetExporter": frozenset({EXPORTER, OFFICER, SERVICE}),
    "ListExporters": frozenset({OFFICER}),
    "CreateFair": frozenset({OFFICER}),
    "OpenFair": frozenset({OFFICER}),
    "CloseFair": frozenset({OFFICER}),
    "GetFair": EVERYONE,
    "ListFairs": EVERYONE,
    "SubmitApplication": frozenset({EXPORTER}),
    "WithdrawApplication": frozenset({EXPORTER}),
    "RejectApplication": frozenset({OFFICER}),
    "GetApplication": frozenset({EXPORTER, OFFICER}),
    "ListApplications": frozenset({EXPORTER, OFFICER}),
    "RunAllocation": frozenset({OFFICER}),
    "GetExhibitorStatus": frozenset({SERVICE}),
}

SERVICE_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["BoothService"]
REFUSED = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


@pytest.fixture
async def address(settings: Settings) -> AsyncIterator[str]:
    host = ServiceHost("booth", booth.grpc_api.build, settings)
    await host.start()
    try:
        yield host.server.address
    finally:
        await host.stop()


@pytest.fixture
async def stub(address: str) -> AsyncIterator[pb_grpc.BoothServiceStub]:
    async with grpc.aio.insecure_channel(address) as channel:
        yield pb_grpc.BoothServiceStub(channel)


def party_of(role: Role) -> str:
    return {
        EXPORTER: random_credit_code(),
        BUYER: "buyer-1",
        OPERATOR: "operator-1",
        OFFICER: "",
        SERVICE: "expo",
    }[role]


async def status_of(
    stub: pb_grpc.BoothServiceStub, method: str, metadata: Metadata | None
) -> grpc.StatusCode:
    """How the method answers an empty request made with ``metadata``."""
    request_type = getattr(pb, SERVICE_DESCRIPTOR.methods_by_name[method].input_type.name)
    try:
        await getattr(stub, method)(request_type(), metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def test_the_rule_table_names_every_booth_rpc() -> None:
    assert set(ALLOWED) == {m.name for m in SERVICE_DESCRIPTOR.methods}


async def test_every_method_refuses_exactly_the_roles_it_is_not_for(
    stub: pb_grpc.BoothServiceStub, identities: Identities
) -> None:
    cases = [(method, role) for method in ALLOWED for role in Role]
    # One principal per role (its own rate budget), each calling every method.
    metadata = {role: identities.metadata(role, party_of(role)) for role in Role}
    answers = await asyncio.gather(
        *(status_of(stub, method, metadata[role]) for method, role in cases)
    )
    observed = dict(zip(cases, answers, strict=True))
    denied = {case for case, code in observed.items() if code is grpc.StatusCode.PERMISSION_DENIED}
    assert denied == {(m, r) for m, r in cases if r not in ALLOWED[m]}
    # The roles a method is for get past authentication and authorization: what they
    # then hear (an empty request is mostly invalid) is the use case's answer.
    admitted = {case: observed[case] for case in cases if case[1] in ALLOWED[case[0]]}
    assert not {case: code for case, code in admitted.items() if code in REFUSED}


async def test_calls_without_a_valid_token_are_unauthenticated(
    stub: pb_grpc.BoothServiceStub, identities: Identities, tmp_path: Path
) -> None:
    officer = Principal(subject="officer-1", role=OFFICER)
    trusted_key = identities.keys.signing_key_file.read_bytes()
    foreign = DevelopmentKeys.ensure(tmp_path / "foreign")

    def signed(key: bytes, *, issuer: str = TEST_ISSUER, audience: str = TEST_AUDIENCE) -> str:
        return TokenIssuer(key, issuer=issuer, audience=audience).issue(officer)

    # The same officer with a sound token is served: the failures below are the token's.
    assert await status_of(stub, "ListExporters", identities.officer()) is grpc.StatusCode.OK
    wrong = {
        "no token": None,
        "not a bearer token": (("authorization", "Basic b2ZmaWNlcjpzZWNyZXQ="),),
        "not a JWT": bearer("not-a-jwt"),
        "expired": bearer(identities.issuer.issue(officer, ttl_seconds=-120)),
        "another key": bearer(
            foreign.issuer(issuer=TEST_ISSUER, audience=TEST_AUDIENCE).issue(officer)
        ),
        # Another key claiming to be the trusted one: only the signature can tell.
        "another key, trusted key id": bearer(
            TokenIssuer(
                foreign.signing_key_file.read_bytes(),
                issuer=TEST_ISSUER,
                audience=TEST_AUDIENCE,
                key_id=identities.keys.key_id,
            ).issue(officer)
        ),
        "wrong audience": bearer(signed(trusted_key, audience="another-platform")),
        "wrong issuer": bearer(signed(trusted_key, issuer="someone-else")),
        "not valid yet": bearer(identities.issuer.issue(officer, not_before=time.time() + 600)),
    }
    answers = {
        name: await status_of(stub, method, metadata)
        for name, metadata in wrong.items()
        for method in ("ListExporters", "GetFair")
    }
    assert answers == dict.fromkeys(answers, grpc.StatusCode.UNAUTHENTICATED)


async def test_another_firms_application_is_not_found_and_its_lists_stay_its_own(
    stub: pb_grpc.BoothServiceStub, identities: Identities, unique: str
) -> None:
    mine, theirs = await register_exporters(stub, 2, seed=31, identities=identities)
    fair_id = f"access-{unique}"
    officer = identities.officer()
    await stub.CreateFair(fair_request(fair_id), metadata=officer, timeout=10)
    await stub.OpenFair(
        pb.OpenFairRequest(request_id=f"open-{fair_id}", fair_id=fair_id),
        metadata=officer,
        timeout=10,
    )
    application = (await submit(stub, identities, fair_id, theirs)).application
    me = identities.exporter(mine)

    async def refused(call: Awaitable[object]) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await call
        return error.value

    missing = await refused(
        stub.GetApplication(
            pb.GetApplicationRequest(application_id="nope"), metadata=me, timeout=10
        )
    )
    hidden = await refused(
        stub.GetApplication(
            pb.GetApplicationRequest(application_id=application.application_id),
            metadata=me,
            timeout=10,
        )
    )
    withdrawn = await refused(
        stub.WithdrawApplication(
            pb.WithdrawApplicationRequest(
                request_id=f"w-{unique}", application_id=application.application_id
            ),
            metadata=me,
            timeout=10,
        )
    )
    # Exactly what a missing application gets: nothing says it exists.
    for error in (hidden, withdrawn):
        assert error.code() is missing.code() is grpc.StatusCode.NOT_FOUND
        assert error.details() == missing.details().replace("nope", application.application_id)

    # Another firm's record reads as missing too; registering it is refused outright.
    other_firm = await refused(
        stub.GetExporter(pb.GetExporterRequest(credit_code=theirs), metadata=me, timeout=10)
    )
    updated = await refused(
        stub.UpdateExporter(
            pb.UpdateExporterRequest(
                request_id=f"u-{unique}",
                credit_code=theirs,
                profile=pb.ExporterProfile(name="taken over"),
            ),
            metadata=me,
            timeout=10,
        )
    )
    assert other_firm.code() is updated.code() is grpc.StatusCode.NOT_FOUND
    someone_else = random_credit_code()
    registered = await refused(
        stub.RegisterExporter(
            pb.RegisterExporterRequest(
                request_id=f"r-{unique}",
                credit_code=someone_else,
                profile=pb.ExporterProfile(name="not me"),
            ),
            metadata=me,
            timeout=10,
        )
    )
    assert registered.code() is grpc.StatusCode.PERMISSION_DENIED

    # A list filter naming the other firm shows none of its applications; an officer's does.
    mine_only = await stub.ListApplications(
        pb.ListApplicationsRequest(fair_id=fair_id, credit_code=theirs), metadata=me, timeout=10
    )
    assert list(mine_only.applications) == []
    as_officer = await stub.ListApplications(
        pb.ListApplicationsRequest(fair_id=fair_id, credit_code=theirs),
        metadata=officer,
        timeout=10,
    )
    assert [a.application_id for a in as_officer.applications] == [application.application_id]
    theirs_own = await stub.GetApplication(
        pb.GetApplicationRequest(application_id=application.application_id),
        metadata=identities.exporter(theirs),
        timeout=10,
    )
    assert theirs_own.application.state == res.APPLICATION_STATE_SCORED
