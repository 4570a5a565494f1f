"""`chuhai operator`: a warehouse operator registers and updates its public overseas
warehouses, and sees their bookings and how full they are. The operator acting is the
one the caller's token is bound to."""

from __future__ import annotations

from typing import Annotated

import typer
from google.protobuf.field_mask_pb2 import FieldMask

from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as warehouse_pb
from cli import values
from cli.connection import Platform
from cli.invocation import JsonOutput, Limit, RequestId, request_id_of, run, show_all_pages
from cli.output import Column, details, enum_label, listing, percent, show, space

app = typer.Typer(
    help="Warehouse operators: register and update overseas warehouses, see their bookings "
    "and utilisation.",
    epilog="Every command acts for the operator your token is bound to (chuhai whoami): "
    "it registers warehouses as theirs, and changes and sees only its own.\n\n"
    "Examples:\n\n"
    "  chuhai operator register DE-HAM-01 --name 'Hamburg public warehouse' "
    "--operator-name 'Henan Logistics' --country DE --city Hamburg --location 53.55,9.99 "
    "--pallets 2000 --service storage --service customs-clearance\n\n"
    "  chuhai operator update DE-HAM-01 --pallets 2500\n\n"
    "  chuhai operator utilisation DE-HAM-01 --from 2026-06-01 --until 2026-07-01",
    no_args_is_help=True,
)

WarehouseCode = Annotated[
    str,
    typer.Argument(
        metavar="CODE",
        help="The warehouse's code: 3 to 32 capital letters, digits and inner '-'.",
        show_default=False,
    ),
]
WAREHOUSE_PAGE = 100
PROFILE = "Profile"

Name = Annotated[str, typer.Option(help="The warehouse's name.", rich_help_panel=PROFILE)]
Kind = Annotated[
    values.OperatorKind | None,
    typer.Option(
        "--operator-kind",
        case_sensitive=False,
        help="A service firm, or an exporter sharing its own warehouse (registering: "
        "service-firm unless said).",
        rich_help_panel=PROFILE,
    ),
]
OperatorName = Annotated[str, typer.Option(help="Who runs it.", rich_help_panel=PROFILE)]
OperatorCode = Annotated[
    str,
    typer.Option(
        "--operator-credit-code",
        help="The operator's credit code (required for an exporter).",
        rich_help_panel=PROFILE,
    ),
]
Country = Annotated[
    str,
    typer.Option("--country", help="Where it stands, ISO 3166 alpha-2.", rich_help_panel=PROFILE),
]
City = Annotated[str, typer.Option(help="City.", rich_help_panel=PROFILE)]
Address = Annotated[str, typer.Option(help="Street address.", rich_help_panel=PROFILE)]
Location = Annotated[
    str, typer.Option(help="LAT,LON in decimal degrees, e.g. 53.55,9.99.", rich_help_panel=PROFILE)
]
Area = Annotated[
    float, typer.Option("--area-m2", min=0, help="Floor area, m².", rich_help_panel=PROFILE)
]
Pallets = Annotated[
    int | None,
    typer.Option("--pallets", min=0, help="Capacity: pallet positions.", rich_help_panel=PROFILE),
]
Cubic = Annotated[
    int | None,
    typer.Option("--cubic-metres", min=0, help="Capacity: cubic metres.", rich_help_panel=PROFILE),
]
Services = Annotated[
    list[values.LogisticsService] | None,
    typer.Option(
        "--service",
        case_sensitive=False,
        help="A service offered; repeatable.",
        rich_help_panel=PROFILE,
    ),
]
RecognisedBy = Annotated[
    str,
    typer.Option(help="Who recognised it as a public overseas warehouse.", rich_help_panel=PROFILE),
]
RecognisedSince = Annotated[
    str, typer.Option(help="Since when, YYYY-MM-DD.", rich_help_panel=PROFILE)
]
DeliversTo = Annotated[
    list[str] | None,
    typer.Option(
        "--delivers-to",
        help="Another country it delivers to (ISO alpha-2); repeatable.",
        rich_help_panel=PROFILE,
    ),
]


def _apply_profile(
    profile: warehouse_res.WarehouseProfile,
    *,
    name: str,
    operator_kind: values.OperatorKind | None,
    operator_name: str,
    operator_credit_code: str,
    country_code: str,
    city: str,
    address: str,
    location: str,
    area_m2: float | None,
    pallet_positions: int | None,
    cubic_metres: int | None,
    services: list[values.LogisticsService] | None,
    recognised_by: str,
    recognised_since: str,
    delivery_countries: list[str] | None,
) -> list[str]:
    """Set what was given on ``profile``; return the top-level profile fields it changed
    (an update's mask). A part of a field keeps the rest of it: --pallets alone keeps
    the cubic metres."""
    changed: list[str] = []
    if name:
        profile.name = name
        changed.append("name")
    if operator_kind or operator_name or operator_credit_code:
        if operator_kind:
            profile.operator.kind = values.OPERATOR_KINDS.number(operator_kind)
        if operator_name:
            profile.operator.name = operator_name
        if operator_credit_code:
            profile.operator.credit_code = operator_credit_code
        changed.append("operator")
    for field, value in (("country_code", country_code), ("city", city), ("address", address)):
        if value:
            setattr(profile, field, value)
            changed.append(field)
    if location:
        profile.location.CopyFrom(values.geo_point(location))
        changed.append("location")
    if area_m2 is not None:
        profile.area_m2 = area_m2
        changed.append("area_m2")
    if pallet_positions is not None or cubic_metres is not None:
        if pallet_positions is not None:
            profile.capacity.pallet_positions = pallet_positions
        if cubic_metres is not None:
            profile.capacity.cubic_metres = cubic_metres
        changed.append("capacity")
    if services:
        del profile.services[:]
        profile.services.extend(values.LOGISTICS_SERVICES.number(s) for s in services)
        changed.append("services")
    if recognised_by or recognised_since:
        if recognised_by:
            profile.recognition.recognised_by = recognised_by
        if recognised_since:
            profile.recognition.since = recognised_since
        changed.append("recognition")
    if delivery_countries:
        del profile.delivery_countries[:]
        profile.delivery_countries.extend(delivery_countries)
        changed.append("delivery_countries")
    return changed


SERVICE_FIRM = values.OperatorKind("service-firm")


@app.command()
def register(
    ctx: typer.Context,
    code: WarehouseCode,
    name: Name,
    operator_name: OperatorName,
    country_code: Country,
    city: City,
    address: Address,
    location: Location,
    area_m2: Area,
    operator_kind: Kind = None,
    operator_credit_code: OperatorCode = "",
    pallet_positions: Pallets = None,
    cubic_metres: Cubic = None,
    services: Services = None,
    recognised_by: RecognisedBy = "",
    recognised_since: RecognisedSince = "",
    delivery_countries: DeliversTo = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Register a public overseas warehouse under its code, operated by you."""
    request_id = request_id_of(request_id)
    request = warehouse_pb.RegisterWarehouseRequest(request_id=request_id, code=code)
    _apply_profile(
        request.profile,
        name=name,
        operator_kind=operator_kind or SERVICE_FIRM,
        operator_name=operator_name,
        operator_credit_code=operator_credit_code,
        country_code=country_code,
        city=city,
        address=address,
        location=location,
        area_m2=area_m2,
        pallet_positions=pallet_positions,
        cubic_metres=cubic_metres,
        services=services,
        recognised_by=recognised_by,
        recognised_since=recognised_since,
        delivery_countries=delivery_countries,
    )
    reply = run(
        ctx, lambda p: p.call(p.warehouse.RegisterWarehouse, request), request_id=request_id
    )
    show(reply, json_output, details(reply.warehouse, "Warehouse registered"))


@app.command()
def update(
    ctx: typer.Context,
    code: WarehouseCode,
    name: Name = "",
    operator_kind: Kind = None,
    operator_name: OperatorName = "",
    operator_credit_code: OperatorCode = "",
    country_code: Country = "",
    city: City = "",
    address: Address = "",
    location: Location = "",
    area_m2: Annotated[
        float | None,
        typer.Option("--area-m2", min=0, help="Floor area, m².", rich_help_panel=PROFILE),
    ] = None,
    pallet_positions: Pallets = None,
    cubic_metres: Cubic = None,
    services: Services = None,
    recognised_by: RecognisedBy = "",
    recognised_since: RecognisedSince = "",
    delivery_countries: DeliversTo = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Change what you give of your warehouse's profile; the rest stays as it is."""
    changes = {
        "name": name,
        "operator_kind": operator_kind,
        "operator_name": operator_name,
        "operator_credit_code": operator_credit_code,
        "country_code": country_code,
        "city": city,
        "address": address,
        "location": location,
        "area_m2": area_m2,
        "pallet_positions": pallet_positions,
        "cubic_metres": cubic_metres,
        "services": services,
        "recognised_by": recognised_by,
        "recognised_since": recognised_since,
        "delivery_countries": delivery_countries,
    }
    if not _apply_profile(warehouse_res.WarehouseProfile(), **changes):
        raise typer.BadParameter("give at least one profile option to change")
    request_id = request_id_of(request_id)

    async def work(p: Platform) -> warehouse_pb.UpdateWarehouseResponse:
        current = await p.call(
            p.warehouse.GetWarehouse, warehouse_pb.GetWarehouseRequest(code=code)
        )
        request = warehouse_pb.UpdateWarehouseRequest(request_id=request_id, code=code)
        request.profile.CopyFrom(current.warehouse.profile)
        request.update_mask.CopyFrom(FieldMask(paths=_apply_profile(request.profile, **changes)))
        return await p.call(p.warehouse.UpdateWarehouse, request)

    reply = run(ctx, work, request_id=request_id)
    show(reply, json_output, details(reply.warehouse, "Warehouse updated"))


RESERVATION_COLUMNS = (
    Column("reservation", lambda r: r.reservation_id),
    Column("exporter", lambda r: r.exporter_credit_code),
    Column("pallets", lambda r: f"{r.space.pallet_positions:,}", "right"),
    Column("m³", lambda r: f"{r.space.cubic_metres:,}", "right"),
    Column("from", lambda r: r.start_date),
    Column("until", lambda r: r.end_date),
    Column("status", lambda r: enum_label(r, "status")),
)


@app.command()
def bookings(
    ctx: typer.Context,
    warehouse_code: WarehouseCode,
    status: Annotated[
        values.ReservationStatus | None,
        typer.Option(case_sensitive=False, help="Only with this status."),
    ] = None,
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """List the reservations of a warehouse you operate, oldest first."""
    request = warehouse_pb.ListReservationsRequest(
        warehouse_code=warehouse_code, status=values.RESERVATION_STATUSES.number(status)
    )
    show_all_pages(
        ctx,
        rpc=lambda p: p.warehouse.ListReservations,
        request=request,
        items="reservations",
        what="bookings",
        page_size=WAREHOUSE_PAGE,
        limit=limit,
        title=f"Bookings of {warehouse_code}",
        columns=RESERVATION_COLUMNS,
        json_output=json_output,
    )


DAY_COLUMNS = (
    Column("day", lambda d: d.date),
    Column("reserved", lambda d: space(d.reserved), "right"),
    Column("free", lambda d: space(d.free), "right"),
    Column("pallets used", lambda d: percent(d.pallet_ratio), "right"),
    Column("m³ used", lambda d: percent(d.cubic_metre_ratio), "right"),
)


@app.command()
def utilisation(
    ctx: typer.Context,
    warehouse_code: WarehouseCode,
    start_date: Annotated[
        str, typer.Option("--from", help="First day, YYYY-MM-DD.", show_default="today")
    ] = "",
    end_date: Annotated[
        str,
        typer.Option("--until", help="Day after the last.", show_default="two weeks after --from"),
    ] = "",
    json_output: JsonOutput = False,
) -> None:
    """Reserved and free space of a warehouse you operate, day by day."""
    first = values.day(start_date)
    request = warehouse_pb.GetUtilisationRequest(
        warehouse_code=warehouse_code,
        start_date=first,
        end_date=end_date or values.after(first, 14),
    )
    reply = run(ctx, lambda p: p.call(p.warehouse.GetUtilisation, request))
    show(
        reply,
        json_output,
        listing(
            f"Utilisation of {reply.warehouse_code} (capacity {space(reply.capacity)})",
            DAY_COLUMNS,
            reply.days,
        ),
    )
