"""`chuhai exporter`: a firm registers, applies for booths, shows its products at the
cloud expo, answers buyers and books space in overseas warehouses. The firm acting is
the one the caller's token is bound to: the commands never ask which."""

from __future__ import annotations

from typing import Annotated

import typer

from chuhai.booth.v1 import booth_service_pb2 as booth_pb
from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import resources_pb2 as expo_res
from chuhai.warehouse.v1 import resources_pb2 as warehouse_res
from chuhai.warehouse.v1 import warehouse_service_pb2 as warehouse_pb
from cli import values
from cli.invocation import (
    JsonOutput,
    Limit,
    RequestId,
    request_id_of,
    run,
    show_all_pages,
    token_party,
)
from cli.output import Column, day_of, details, enum_label, show, space

app = typer.Typer(
    help="Exporters: register, apply for booths, exhibit at the cloud expo, answer buyers, "
    "book warehouse space.",
    epilog="Every command acts for the firm your token is bound to (chuhai whoami).\n\n"
    "Examples:\n\n"
    "  chuhai login --token <your exporter JWT>\n\n"
    "  chuhai exporter register --name 'Xuchang Hair Co.' --product '670420:human hair wigs'\n\n"
    "  chuhai exporter apply canton-139 --booth-type standard --hs-code 670420\n\n"
    "  chuhai exporter intents cloud-expo-2026 --state matched",
    no_args_is_help=True,
)

CreditCode = Annotated[
    str,
    typer.Option(
        "--credit-code",
        "-c",
        help="The firm's 18-character unified social credit code.",
        show_default="the firm your token is bound to",
    ),
]

STANDARD_BOOTH = values.BoothType("standard")
# Page sizes: each API's maximum, so long lists take few calls.
BOOTH_PAGE = 500
EXPO_PAGE = 100
WAREHOUSE_PAGE = 100


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The firm's registered name.")],
    credit_code: CreditCode = "",
    district: Annotated[str, typer.Option(help="County or district of the city.")] = "",
    industry: Annotated[str, typer.Option(help="e.g. 'hair products'.")] = "",
    main_products: Annotated[
        list[str] | None,
        typer.Option(
            "--product",
            help="A main product as HS-CODE:NAME, e.g. '670420:human hair wigs'; repeatable.",
        ),
    ] = None,
    export_turnover_usd: Annotated[
        int, typer.Option("--turnover-usd", min=0, help="Last year's export turnover, USD.")
    ] = 0,
    specialised_innovative: Annotated[
        bool,
        typer.Option("--specialised-innovative", help="专精特新: a specialised, innovative SME."),
    ] = False,
    brand_owner: Annotated[bool, typer.Option("--brand-owner", help="Owns its brands.")] = False,
    high_tech_enterprise: Annotated[
        bool, typer.Option("--high-tech", help="A recognised high-tech enterprise.")
    ] = False,
    past_fairs: Annotated[
        list[str] | None,
        typer.Option("--past-fair", help="A fair session exhibited at before; repeatable."),
    ] = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Register your firm with the bureau (its profile decides booth priority).

    A token registers only the firm it is bound to."""
    request_id = request_id_of(request_id)
    request = booth_pb.RegisterExporterRequest(
        request_id=request_id,
        credit_code=credit_code or _own_firm(ctx),
        profile=booth_pb.ExporterProfile(
            name=name,
            district=district,
            industry=industry,
            main_products=[values.product(text) for text in main_products or []],
            export_turnover_usd=export_turnover_usd,
            specialised_innovative=specialised_innovative,
            brand_owner=brand_owner,
            high_tech_enterprise=high_tech_enterprise,
            past_fairs=past_fairs or [],
        ),
    )
    reply = run(ctx, lambda p: p.call(p.booth.RegisterExporter, request), request_id=request_id)
    show(reply, json_output, details(reply.exporter, "Exporter registered"))


def _own_firm(ctx: typer.Context) -> str:
    own = token_party(ctx)
    if not own:
        raise typer.BadParameter(
            "give it, or log in with an exporter's token", param_hint="--credit-code"
        )
    return own


@app.command("show")
def show_exporter(
    ctx: typer.Context, credit_code: CreditCode = "", json_output: JsonOutput = False
) -> None:
    """Show your firm's profile as the bureau holds it (an officer: any firm's)."""
    request = booth_pb.GetExporterRequest(credit_code=credit_code or _own_firm(ctx))
    reply = run(ctx, lambda p: p.call(p.booth.GetExporter, request))
    show(reply, json_output, details(reply.exporter, "Exporter"))


@app.command()
def apply(
    ctx: typer.Context,
    fair_id: Annotated[
        str,
        typer.Argument(metavar="FAIR_ID", help="The fair, e.g. canton-139.", show_default=False),
    ],
    main_product_hs_code: Annotated[
        str,
        typer.Option(
            "--hs-code", help="Your main product's HS code; it decides the exhibition zone."
        ),
    ],
    booth_type: Annotated[
        values.BoothType, typer.Option(case_sensitive=False, help="The booth wanted.")
    ] = STANDARD_BOOTH,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Apply for a booth at a fair; the application is scored at once."""
    request_id = request_id_of(request_id)
    request = booth_pb.SubmitApplicationRequest(
        request_id=request_id,
        fair_id=fair_id,
        booth_type=values.BOOTH_TYPES.number(booth_type),
        main_product_hs_code=main_product_hs_code,
    )
    reply = run(ctx, lambda p: p.call(p.booth.SubmitApplication, request), request_id=request_id)
    show(reply, json_output, details(reply.application, "Application submitted"))


APPLICATION_COLUMNS = (
    Column("application", lambda a: a.application_id),
    Column("zone", lambda a: a.zone_code),
    Column("state", lambda a: enum_label(a, "state")),
    Column("score", lambda a: str(a.score), "right"),
    Column(
        "booth",
        lambda a: a.booth_number or (f"#{a.waitlist_position}" if a.waitlist_position else ""),
    ),
    Column("penalty ¥", lambda a: f"{a.penalty_fen / 100:,.2f}" if a.penalty_fen else "", "right"),
)


def list_applications(
    ctx: typer.Context, query: booth_pb.ListApplicationsRequest, limit: int, json_output: bool
) -> None:
    """Applications matching ``query``, page after page (shared with the bureau's review)."""
    show_all_pages(
        ctx,
        rpc=lambda p: p.booth.ListApplications,
        request=query,
        items="applications",
        what="applications",
        page_size=BOOTH_PAGE,
        limit=limit,
        title="Booth applications",
        columns=APPLICATION_COLUMNS,
        json_output=json_output,
    )


@app.command()
def applications(
    ctx: typer.Context,
    fair_id: Annotated[str, typer.Option("--fair", help="Only this fair's.")] = "",
    state: Annotated[
        values.ApplicationState | None,
        typer.Option(case_sensitive=False, help="Only in this state."),
    ] = None,
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """List your booth applications, in priority order."""
    # The service lists an exporter's own applications only.
    query = booth_pb.ListApplicationsRequest(
        fair_id=fair_id, state=values.APPLICATION_STATES.number(state)
    )
    list_applications(ctx, query, limit, json_output)


@app.command()
def withdraw(
    ctx: typer.Context,
    application_id: Annotated[
        str, typer.Argument(metavar="APPLICATION_ID", help="The application.", show_default=False)
    ],
    reason: Annotated[str, typer.Option(help="Why, for the bureau.")] = "",
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Withdraw an application; a penalty applies after the allocation deadline."""
    request_id = request_id_of(request_id)
    request = booth_pb.WithdrawApplicationRequest(
        request_id=request_id, application_id=application_id, reason=reason
    )
    reply = run(ctx, lambda p: p.call(p.booth.WithdrawApplication, request), request_id=request_id)
    tables = [details(reply.application, "Application withdrawn")]
    if reply.HasField("promoted"):
        tables.append(details(reply.promoted, "The freed booth went to"))
    show(reply, json_output, *tables)


@app.command()
def join(
    ctx: typer.Context,
    edition_id: Annotated[
        str, typer.Argument(metavar="EDITION_ID", help="The expo edition.", show_default=False)
    ],
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Join a cloud expo edition as exhibitor (with your booth, or online only)."""
    request_id = request_id_of(request_id)
    request = expo_pb.JoinEditionRequest(request_id=request_id, edition_id=edition_id)
    reply = run(ctx, lambda p: p.call(p.expo.JoinEdition, request), request_id=request_id)
    show(reply, json_output, details(reply.exhibitor, "Exhibitor"))


@app.command()
def publish(
    ctx: typer.Context,
    edition_id: Annotated[
        str, typer.Argument(metavar="EDITION_ID", help="The expo edition.", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="The product's name.")],
    hs_code: Annotated[str, typer.Option(help="HS code, 6 to 10 digits.")],
    moq: Annotated[int, typer.Option(min=0, help="Minimum order quantity.")] = 0,
    unit: Annotated[str, typer.Option(help="Unit of quantity: piece, kg, set...")] = "piece",
    price_min: Annotated[str, typer.Option(help="Lowest price, e.g. 'USD 5'.")] = "",
    price_max: Annotated[str, typer.Option(help="Highest price, e.g. 'USD 500'.")] = "",
    description: Annotated[str, typer.Option(help="What buyers read.")] = "",
    certifications: Annotated[
        list[str] | None, typer.Option("--certification", help="e.g. CE; repeatable.")
    ] = None,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Publish a product in your showroom at a cloud expo edition."""
    request_id = request_id_of(request_id)
    request = expo_pb.PublishProductRequest(
        request_id=request_id,
        edition_id=edition_id,
        name=name,
        hs_code=hs_code,
        description=description,
        moq=moq,
        unit=unit,
        certifications=certifications or [],
    )
    if price_min:
        request.price_min.CopyFrom(values.money(price_min))
    if price_max:
        request.price_max.CopyFrom(values.money(price_max))
    reply = run(ctx, lambda p: p.call(p.expo.PublishProduct, request), request_id=request_id)
    show(reply, json_output, details(reply.product, "Product published"))


INTENT_COLUMNS = (
    Column("intent", lambda i: i.intent_id),
    Column("kind", lambda i: enum_label(i, "kind")),
    Column("from", lambda i: i.buyer_country),
    Column("HS code", lambda i: i.hs_code),
    Column("quantity", lambda i: f"{i.quantity:,} {i.unit}", "right"),
    Column("deadline", lambda i: day_of(i.deadline)),
    Column("state", lambda i: enum_label(i, "state")),
    Column("answers", lambda i: str(len(i.responses)), "right"),
)


@app.command()
def intents(
    ctx: typer.Context,
    edition_id: Annotated[
        str, typer.Argument(metavar="EDITION_ID", help="The expo edition.", show_default=False)
    ],
    state: Annotated[
        values.IntentState | None, typer.Option(case_sensitive=False, help="Only in this state.")
    ] = None,
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """List the inquiries and RFQs that reached you."""
    # The service lists the intents that reached the caller's own firm.
    query = expo_pb.ListIntentsRequest(
        edition_id=edition_id, state=values.INTENT_STATES.number(state)
    )
    show_all_pages(
        ctx,
        rpc=lambda p: p.expo.ListIntents,
        request=query,
        items="intents",
        what="intents",
        page_size=EXPO_PAGE,
        limit=limit,
        title="Purchase intents",
        columns=INTENT_COLUMNS,
        json_output=json_output,
    )


@app.command()
def answer(
    ctx: typer.Context,
    intent_id: Annotated[
        str, typer.Argument(metavar="INTENT_ID", help="The intent.", show_default=False)
    ],
    decline: Annotated[bool, typer.Option("--decline", help="Decline instead of quoting.")] = False,
    reason: Annotated[str, typer.Option(help="Why you decline.")] = "",
    unit_price: Annotated[str, typer.Option(help="Quoted price per unit, e.g. 'USD 12.50'.")] = "",
    moq: Annotated[int, typer.Option(min=0, help="Minimum order quantity quoted.")] = 0,
    lead_time_days: Annotated[int, typer.Option(min=0, help="Days to deliver.")] = 0,
    incoterm: Annotated[
        values.Incoterm | None, typer.Option(case_sensitive=False, help="Incoterm 2020 quoted.")
    ] = None,
    valid_until: Annotated[
        str,
        typer.Option(help="Quote valid until (date or ISO date-time).", show_default="in 30 days"),
    ] = "",
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Quote for an intent (price, MOQ, lead time, Incoterm) or decline it."""
    request_id = request_id_of(request_id)
    request = expo_pb.RespondToIntentRequest(request_id=request_id, intent_id=intent_id)
    if decline:
        request.kind = expo_res.RESPONSE_KIND_DECLINED
        request.reason = reason
    else:
        request.kind = expo_res.RESPONSE_KIND_QUOTED
        if unit_price:
            request.unit_price.CopyFrom(values.money(unit_price))
        request.moq = moq
        request.lead_time_days = lead_time_days
        request.incoterm = values.INCOTERMS.number(incoterm)
        request.valid_until.CopyFrom(values.moment(valid_until, default_days=30))
    reply = run(ctx, lambda p: p.call(p.expo.RespondToIntent, request), request_id=request_id)
    show(reply, json_output, details(reply.intent, "Intent answered"))


MATCH_COLUMNS = (
    Column("code", lambda m: m.warehouse.code),
    Column("name", lambda m: m.warehouse.profile.name),
    Column("where", lambda m: f"{m.warehouse.profile.city}, {m.warehouse.profile.country_code}"),
    Column("status", lambda m: enum_label(m.warehouse, "status")),
    Column("capacity", lambda m: space(m.warehouse.profile.capacity)),
    Column("free", lambda m: space(m.free) if m.HasField("free") else ""),
    Column("km", lambda m: f"{m.distance_km:,.0f}" if m.distance_km else "", "right"),
)


@app.command()
def warehouses(
    ctx: typer.Context,
    country_code: Annotated[
        str, typer.Option("--country", help="Stands in this country (ISO 3166 alpha-2).")
    ] = "",
    serving_country: Annotated[
        str, typer.Option("--serving", help="Stands in or delivers to this country.")
    ] = "",
    services: Annotated[
        list[values.LogisticsService] | None,
        typer.Option("--service", case_sensitive=False, help="Offers this; repeatable."),
    ] = None,
    available_from: Annotated[
        str, typer.Option("--from", help="With --min-*: first day, YYYY-MM-DD.")
    ] = "",
    available_until: Annotated[
        str, typer.Option("--until", help="With --min-*: day after the last.")
    ] = "",
    min_pallets: Annotated[int, typer.Option(min=0, help="Free pallet positions every day.")] = 0,
    min_cubic_metres: Annotated[int, typer.Option(min=0, help="Free cubic metres every day.")] = 0,
    near: Annotated[str, typer.Option(help="Nearest first from LAT,LON, e.g. 53.55,9.99.")] = "",
    within_km: Annotated[float, typer.Option(min=0, help="With --near: at most this far.")] = 0,
    include_suspended: Annotated[
        bool, typer.Option("--include-suspended", help="List suspended ones too.")
    ] = False,
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """Search public overseas warehouses: where, services, free space, distance."""
    query = warehouse_pb.SearchWarehousesRequest(
        country_code=country_code,
        serving_country=serving_country,
        services=[values.LOGISTICS_SERVICES.number(s) for s in services or []],
        available_from=available_from,
        available_until=available_until,
        within_km=within_km,
        include_suspended=include_suspended,
    )
    if min_pallets or min_cubic_metres:
        query.min_free.CopyFrom(
            warehouse_res.Space(pallet_positions=min_pallets, cubic_metres=min_cubic_metres)
        )
    if near:
        query.near.CopyFrom(values.geo_point(near))
    show_all_pages(
        ctx,
        rpc=lambda p: p.warehouse.SearchWarehouses,
        request=query,
        items="matches",
        what="warehouses",
        page_size=WAREHOUSE_PAGE,
        limit=limit,
        title="Overseas warehouses",
        columns=MATCH_COLUMNS,
        json_output=json_output,
    )


@app.command()
def book(
    ctx: typer.Context,
    warehouse_code: Annotated[
        str,
        typer.Argument(
            metavar="WAREHOUSE_CODE", help="The warehouse, e.g. DE-HAM-01.", show_default=False
        ),
    ],
    end_date: Annotated[
        str, typer.Option("--until", help="Day after the last, YYYY-MM-DD.", show_default=False)
    ],
    pallet_positions: Annotated[
        int, typer.Option("--pallets", min=0, help="Pallet positions.")
    ] = 0,
    cubic_metres: Annotated[int, typer.Option(min=0, help="Cubic metres.")] = 0,
    start_date: Annotated[
        str, typer.Option("--from", help="First day, YYYY-MM-DD.", show_default="today")
    ] = "",
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Reserve space in a warehouse on every day of a period."""
    request_id = request_id_of(request_id)
    request = warehouse_pb.ReserveCapacityRequest(
        request_id=request_id,
        warehouse_code=warehouse_code,
        space=warehouse_res.Space(pallet_positions=pallet_positions, cubic_metres=cubic_metres),
        start_date=values.day(start_date),
        end_date=end_date,
    )
    reply = run(ctx, lambda p: p.call(p.warehouse.ReserveCapacity, request), request_id=request_id)
    show(reply, json_output, details(reply.reservation, "Space reserved"))
