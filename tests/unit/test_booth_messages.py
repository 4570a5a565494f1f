"""The booth service's protobuf edge: requests to commands (every wrong field named) and
domain events to outgoing events (topic, key and the new payloads)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from booth import domain, messages
from booth.domain import ApplicationState, BoothQuota, BoothType
from booth.grpc_api import ACCESS
from chuhai.booth.v1 import booth_service_pb2 as pb
from chuhai.booth.v1 import events_pb2 as events
from chuhai.booth.v1 import resources_pb2 as res
from runtime.adapters import topics
from runtime.adapters.events import envelope_for, schema_version
from runtime.kernel.errors import InvalidArgument

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VALID_CODE = "9144030071526726XG"


def stamp(moment: datetime) -> Timestamp:
    result = Timestamp()
    result.FromDatetime(moment)
    return result


def fields_of(decode: Callable[[Any], object], request: Message) -> dict[str, str]:
    with pytest.raises(InvalidArgument) as error:
        decode(request)
    return {v.field: v.description for v in error.value.violations}


def test_exporter_registration_names_every_wrong_field() -> None:
    request = pb.RegisterExporterRequest(
        request_id="r",
        credit_code=VALID_CODE[:-1] + "Y",
        profile=pb.ExporterProfile(
            name=" ",
            export_turnover_usd=-1,
            main_products=[res.Product(name="", hs_code="12")],
        ),
    )
    assert set(fields_of(messages.register_exporter_command, request)) == {
        "credit_code",
        "profile.name",
        "profile.export_turnover_usd",
        "profile.main_products[0].name",
        "profile.main_products[0].hs_code",
    }
    command = messages.register_exporter_command(
        pb.RegisterExporterRequest(
            request_id="r",
            credit_code=f" {VALID_CODE.lower()} ",
            profile=pb.ExporterProfile(
                name=" 许昌发制品 ", main_products=[res.Product(name="wigs", hs_code="6704.20")]
            ),
        )
    )
    assert (command.credit_code, command.profile.name) == (VALID_CODE, "许昌发制品")
    assert command.profile.main_products == (domain.Product("wigs", "670420"),)


def fair_request(**changes: object) -> pb.CreateFairRequest:
    request = pb.CreateFairRequest(
        request_id="r",
        fair_id="canton-139",
        name="Canton Fair",
        phases=[res.Phase(name="Phase 1", starts_on="2026-04-15", ends_on="2026-04-19")],
        zones=[res.Zone(code="H2", name="Hair", hs_headings=["6704"])],
        booth_quotas=[
            res.BoothQuota(
                booth_type=res.BOOTH_TYPE_STANDARD,
                quota=43,
                application_deadline=stamp(T0),
                allocation_deadline=stamp(T0 + timedelta(days=10)),
                fee_fen=2_000_000,
            )
        ],
    )
    for name, value in changes.items():
        request.ClearField(name)
        getattr(request, name).extend(value)  # type: ignore[arg-type]
    return request


def test_create_fair_reads_dates_types_and_moments_before_the_fairs_rules() -> None:
    command = messages.create_fair_command(fair_request())
    assert command.opens_at == datetime(2026, 4, 15, tzinfo=UTC)
    assert command.scoring_sheet == domain.DEFAULT_SCORING_SHEET
    wrong = fair_request(
        phases=[res.Phase(name="P", starts_on="15/04/2026", ends_on="2026-04-19")],
        booth_quotas=[res.BoothQuota(booth_type=7, quota=43)],
    )
    assert set(fields_of(messages.create_fair_command, wrong)) == {
        "phases[0].starts_on",
        "booth_quotas[0].booth_type",
        "booth_quotas[0].application_deadline",
        "booth_quotas[0].allocation_deadline",
    }
    overlapping = fair_request(
        zones=[
            res.Zone(code="H2", name="Hair", hs_headings=["6704"]),
            res.Zone(code="X", name="Overlap", hs_headings=["6704"]),
        ]
    )
    assert fields_of(messages.create_fair_command, overlapping) == {
        "zones[1].hs_headings": "heading 6704 is already in zone H2"
    }


def test_create_fair_reports_every_wrong_field_at_once() -> None:
    wrong = fair_request(
        phases=[res.Phase(name="P", starts_on="15/04/2026", ends_on="2026-04-19")],
        booth_quotas=[
            res.BoothQuota(
                booth_type=7,
                quota=0,
                application_deadline=stamp(T0),
                allocation_deadline=stamp(T0 - timedelta(days=1)),
            )
        ],
    )
    wrong.fair_id, wrong.name, wrong.request_id = "Canton Fair!", " ", ""
    assert fields_of(messages.create_fair_command, wrong) == {
        "request_id": "is required, 1 to 128 characters",
        "phases[0].starts_on": "must be a date YYYY-MM-DD",
        "booth_quotas[0].booth_type": "must be BOOTH_TYPE_STANDARD or BOOTH_TYPE_BRAND",
        "fair_id": "2-63 characters: lowercase letters, digits and '-'",
        "name": "is required",
        "booth_quotas[0].quota": "1 to 10000",
        # The opening is unknown (phases[0] has no start), the deadlines' order is not.
        "booth_quotas[0].allocation_deadline": (
            "must fall between the application deadline and the fair's opening"
        ),
    }
    # A deadline that could not be read is not judged, nor is the phase of a wrong date.
    unread = fair_request(
        phases=[res.Phase(name="P", starts_on="2026-04-15", ends_on="April")],
        booth_quotas=[res.BoothQuota(booth_type=1, quota=5, application_deadline=stamp(T0))],
    )
    assert fields_of(messages.create_fair_command, unread) == {
        "phases[0].ends_on": "must be a date YYYY-MM-DD",
        "booth_quotas[0].allocation_deadline": "is required",
    }


def test_mutating_requests_report_a_missing_request_id_with_their_other_fields() -> None:
    decoders: list[tuple[Callable[[Any], object], Message, set[str]]] = [
        (messages.register_exporter_command, pb.RegisterExporterRequest(), {"credit_code"}),
        (messages.update_exporter_command, pb.UpdateExporterRequest(), {"credit_code"}),
        (messages.fair_key, pb.OpenFairRequest(), {"fair_id"}),
        (messages.fair_key, pb.CloseFairRequest(), {"fair_id"}),
        (messages.submit_application_command, pb.SubmitApplicationRequest(), {"fair_id"}),
        (messages.withdraw_application_command, pb.WithdrawApplicationRequest(), set()),
        (messages.reject_application_command, pb.RejectApplicationRequest(), {"reason"}),
        (messages.run_allocation_command, pb.RunAllocationRequest(), {"booth_type"}),
    ]
    for decode, request, some_others in decoders:
        found = fields_of(decode, request)
        assert found["request_id"] == "is required, 1 to 128 characters"
        assert some_others <= set(found), type(request).__name__


def test_enum_fields_keep_the_apis_words() -> None:
    submit = pb.SubmitApplicationRequest(request_id="r", fair_id="f", main_product_hs_code="670420")
    assert fields_of(messages.submit_application_command, submit) == {
        "booth_type": "must be BOOTH_TYPE_STANDARD or BOOTH_TYPE_BRAND"
    }
    listing = pb.ListApplicationsRequest(state=9, booth_type=5)
    assert fields_of(messages.list_applications_query, listing) == {
        "state": "unknown state",
        "booth_type": "must be BOOTH_TYPE_STANDARD or BOOTH_TYPE_BRAND",
    }
    query, _ = messages.list_applications_query(pb.ListApplicationsRequest())
    assert (query.state, query.booth_type) == (None, None)


def test_a_submission_names_no_applicant_the_caller_is_it() -> None:
    descriptor = pb.SubmitApplicationRequest.DESCRIPTOR
    assert "credit_code" not in descriptor.fields_by_name
    # Reserved, so neither the number nor the name comes back meaning something else.
    written = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(written)
    assert list(written.reserved_name) == ["credit_code"]
    assert [(r.start, r.end) for r in written.reserved_range] == [(3, 4)]
    command = messages.submit_application_command(
        pb.SubmitApplicationRequest(
            request_id="r", fair_id="f", booth_type=1, main_product_hs_code="670420"
        )
    )
    assert command == domain.SubmitApplication("f", BoothType.STANDARD, "670420")


def test_every_booth_rpc_has_an_access_rule_and_no_rule_names_another() -> None:
    methods = {m.name for m in pb.DESCRIPTOR.services_by_name["BoothService"].methods}
    assert set(ACCESS) == methods


def test_submission_and_lists_report_their_wrong_fields() -> None:
    submit = pb.SubmitApplicationRequest(
        request_id="r", fair_id=" ", booth_type=3, main_product_hs_code="67"
    )
    assert set(fields_of(messages.submit_application_command, submit)) == {
        "fair_id",
        "booth_type",
        "main_product_hs_code",
    }
    listing = pb.ListApplicationsRequest(state=9, booth_type=5, page_size=501, page_token="zz")
    assert set(fields_of(messages.list_applications_query, listing)) == {
        "state",
        "booth_type",
        "page_size",
        "page_token",
    }
    reject = pb.RejectApplicationRequest(request_id="r", application_id="", reason=" ")
    assert set(fields_of(messages.reject_application_command, reject)) == {
        "application_id",
        "reason",
    }
    query, _ = messages.list_applications_query(
        pb.ListApplicationsRequest(credit_code=f" {VALID_CODE.lower()}", state=4)
    )
    assert query == domain.ApplicationQuery(
        credit_code=VALID_CODE, state=ApplicationState.WAITLISTED
    )


def test_a_page_token_only_pages_the_list_it_came_from() -> None:
    _, page = messages.list_applications_query(pb.ListApplicationsRequest(fair_id="a"))
    token = page.token_after([-10, T0, "a:x:standard"])
    _, again = messages.list_applications_query(
        pb.ListApplicationsRequest(fair_id="a", page_token=token)
    )
    assert again.after is not None and again.after[2] == "a:x:standard"
    other = pb.ListApplicationsRequest(fair_id="b", page_token=token)
    assert set(fields_of(messages.list_applications_query, other)) == {"page_token"}


QUOTA = BoothQuota(BoothType.BRAND, 5, T0, T0 + timedelta(days=1), 900)
EXPORTERS, FAIRS, APPLICATIONS = (
    topics.BOOTH_EXPORTERS,
    topics.BOOTH_FAIRS,
    topics.BOOTH_APPLICATIONS,
)
# Each event, the topic it goes to and the aggregate id that keys it.
EVENTS = [
    (
        domain.ExporterRegistered("C1", "firm", "建安区", "wigs", ("670420", "850152")),
        EXPORTERS,
        "C1",
    ),
    (domain.ExporterUpdated("C1", "firm", "魏都区", "wigs", ()), EXPORTERS, "C1"),
    (domain.FairCreated("f", "Fair", "139th", T0 + timedelta(days=40), (QUOTA,)), FAIRS, "f"),
    (domain.FairOpened("f", "Fair", "139th", ("6704", "8501")), FAIRS, "f"),
    (domain.FairClosed("f"), FAIRS, "f"),
    (
        domain.BoothApplicationSubmitted("a", "f", "C1", BoothType.BRAND, "670420", "H2", "d", "i"),
        APPLICATIONS,
        "a",
    ),
    (domain.BoothApplicationScored("a", "f", BoothType.BRAND, 42), APPLICATIONS, "a"),
    (domain.BoothAllocated("a", "f", "C1", BoothType.BRAND, "B-0001", 5), APPLICATIONS, "a"),
    (domain.BoothApplicationWaitlisted("a", "f", BoothType.BRAND, 3), APPLICATIONS, "a"),
    (domain.BoothApplicationRejected("a", "f", BoothType.BRAND, "late"), APPLICATIONS, "a"),
    (
        domain.BoothApplicationWithdrawn(
            "a", "f", "C1", BoothType.BRAND, ApplicationState.ALLOCATED, "B-0001", 450
        ),
        APPLICATIONS,
        "a",
    ),
    (domain.WaitlistPromoted("b", "f", BoothType.BRAND, "B-0001", "a"), APPLICATIONS, "b"),
    (domain.AllocationCompleted("f", BoothType.BRAND, 5, 2, 3, 1), FAIRS, "f"),
]


@pytest.mark.parametrize(("event", "topic", "key"), EVENTS, ids=lambda v: type(v).__name__)
def test_every_domain_event_goes_out_as_its_payload(
    event: object, topic: topics.TopicSpec, key: str
) -> None:
    outgoing = messages.encode_event(event)
    assert type(outgoing.payload).__name__ == type(event).__name__
    assert (outgoing.topic, outgoing.aggregate_id) == (topic, key)
    # Every field of the domain event reaches the payload (enums as their numbers).
    for name, value in vars(event).items():
        if name not in ("opens_at", "quotas", "main_product_hs_codes", "hs_headings"):
            assert getattr(outgoing.payload, name) == value
    envelope_for(outgoing.payload, aggregate_id=outgoing.aggregate_id, producer="booth")


def test_changed_payloads_carry_facts_not_resources() -> None:
    registered = messages.encode_event(EVENTS[0][0]).payload
    assert registered == events.ExporterRegistered(
        credit_code="C1",
        name="firm",
        district="建安区",
        industry="wigs",
        main_product_hs_codes=["670420", "850152"],
    )
    assert schema_version(registered) == 2
    created = messages.encode_event(EVENTS[2][0]).payload
    assert isinstance(created, events.FairCreated)
    assert (created.fair_id, created.name, created.session) == ("f", "Fair", "139th")
    assert created.opens_at.ToDatetime(UTC) == T0 + timedelta(days=40)
    [quota] = created.quotas
    assert (quota.booth_type, quota.quota) == (res.BOOTH_TYPE_BRAND, 5)
    assert quota.allocation_deadline.ToDatetime(UTC) == T0 + timedelta(days=1)
    withdrawn = messages.encode_event(EVENTS[10][0]).payload
    assert isinstance(withdrawn, events.BoothApplicationWithdrawn)
    assert (withdrawn.previous_state, withdrawn.penalty_fen) == (
        res.APPLICATION_STATE_ALLOCATED,
        450,
    )


def test_a_fair_opening_tells_its_name_session_and_headings_in_the_envelope() -> None:
    outgoing = messages.encode_event(domain.FairOpened("f", "Fair", "139th", ("6704", "8501")))
    envelope = envelope_for(outgoing.payload, aggregate_id=outgoing.aggregate_id, producer="booth")
    assert envelope.WhichOneof("payload") == "fair_opened"
    assert envelope.fair_opened == events.FairOpened(
        fair_id="f", name="Fair", session="139th", hs_headings=["6704", "8501"]
    )


def test_an_allocation_run_is_summed_up_on_the_fairs_topic() -> None:
    outgoing = messages.encode_event(domain.AllocationCompleted("f", BoothType.BRAND, 5, 2, 3, 1))
    assert (outgoing.topic, outgoing.aggregate_id) == (FAIRS, "f")
    envelope = envelope_for(outgoing.payload, aggregate_id=outgoing.aggregate_id, producer="booth")
    assert envelope.WhichOneof("payload") == "allocation_completed"
    assert envelope.allocation_completed == events.AllocationCompleted(
        fair_id="f",
        booth_type=res.BOOTH_TYPE_BRAND,
        quota=5,
        allocated=2,
        waitlisted=3,
        rejected=1,
    )
