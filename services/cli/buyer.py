"""`chuhai buyer`: an overseas buyer registers, browses an edition's exhibitors and
products, sends inquiries and RFQs and reads the answers. The buyer acting is the one
the caller's token is bound to."""

from __future__ import annotations

from typing import Annotated

import typer

from chuhai.expo.v1 import expo_service_pb2 as expo_pb
from chuhai.expo.v1 import resources_pb2 as expo_res
from cli import values
from cli.invocation import JsonOutput, Limit, RequestId, request_id_of, run, show_all_pages
from cli.output import Column, day_of, details, enum_label, listing, money, say, show

app = typer.Typer(
    help="Overseas buyers: register, browse exhibitors and products, send inquiries and "
    "RFQs, read the answers.",
    epilog="Every command acts for the buyer your token is bound to (chuhai whoami).\n\n"
    "Examples:\n\n"
    "  chuhai buyer register --company 'Hamburg Hair GmbH' --country DE --email buy@example.com\n\n"
    "  chuhai login --token <your token, now bound to the buyer id printed>\n\n"
    "  chuhai buyer rfq cloud-expo-2026 --hs-code 670420 --quantity 500 --unit piece "
    "--incoterm cif --destination-country DE\n\n"
    "  chuhai buyer answers <intent id>",
    no_args_is_help=True,
)

EditionId = Annotated[
    str, typer.Argument(metavar="EDITION_ID", help="The expo edition.", show_default=False)
]
EXPO_PAGE = 100
NEW_BUYER = values.BuyerType("new")


@app.command()
def register(
    ctx: typer.Context,
    company: Annotated[str, typer.Option(help="Your company's name.")],
    country: Annotated[str, typer.Option(help="Your country, ISO 3166 alpha-2 (DE, NG...).")],
    buyer_type: Annotated[
        values.BuyerType,
        typer.Option(case_sensitive=False, help="New to the expo, or returning."),
    ] = NEW_BUYER,
    contact_name: Annotated[str, typer.Option(help="Who exhibitors may contact.")] = "",
    email: Annotated[str, typer.Option(help="Shown only to exhibitors you address.")] = "",
    phone: Annotated[str, typer.Option(help="Shown only to exhibitors you address.")] = "",
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Register as a buyer; prints your buyer id.

    Needs a buyer's token not yet bound to a buyer id; your identity provider binds the
    next one to the id printed, and with it you send inquiries and RFQs."""
    request_id = request_id_of(request_id)
    request = expo_pb.RegisterBuyerRequest(
        request_id=request_id,
        company=company,
        country=country,
        buyer_type=values.BUYER_TYPES.number(buyer_type),
        contact=expo_res.Contact(name=contact_name, email=email, phone=phone),
    )
    reply = run(ctx, lambda p: p.call(p.expo.RegisterBuyer, request), request_id=request_id)
    show(reply, json_output, details(reply.buyer, "Buyer registered"))
    if not json_output:
        say(
            "[dim]Inquiries and RFQs need a token bound to this buyer id: "
            "chuhai login --token <JWT>.[/dim]"
        )


EXHIBITOR_COLUMNS = (
    Column("exhibitor", lambda e: e.credit_code),
    Column("name", lambda e: e.name),
    Column("industry", lambda e: e.industry),
    Column("kind", lambda e: enum_label(e, "kind")),
    Column("booth", lambda e: e.booth_number),
)


@app.command()
def exhibitors(
    ctx: typer.Context, edition_id: EditionId, limit: Limit = 50, json_output: JsonOutput = False
) -> None:
    """Browse the exhibitors of an expo edition."""
    request = expo_pb.ListExhibitorsRequest(edition_id=edition_id)
    show_all_pages(
        ctx,
        rpc=lambda p: p.expo.ListExhibitors,
        request=request,
        items="exhibitors",
        what="exhibitors",
        page_size=EXPO_PAGE,
        limit=limit,
        title="Exhibitors",
        columns=EXHIBITOR_COLUMNS,
        json_output=json_output,
    )


PRODUCT_COLUMNS = (
    Column("product", lambda p: p.product_id),
    Column("name", lambda p: p.name),
    Column("exhibitor", lambda p: p.credit_code),
    Column("HS code", lambda p: p.hs_code),
    Column("MOQ", lambda p: f"{p.moq:,} {p.unit}", "right"),
    Column("price", lambda p: " - ".join(filter(None, (money(p.price_min), money(p.price_max))))),
    Column("certifications", lambda p: ", ".join(p.certifications)),
)


@app.command()
def products(
    ctx: typer.Context,
    edition_id: EditionId,
    credit_code: Annotated[str, typer.Option("--exhibitor", help="Only this exhibitor's.")] = "",
    hs_heading: Annotated[str, typer.Option(help="Only this 4-digit HS heading, e.g. 6704.")] = "",
    limit: Limit = 50,
    json_output: JsonOutput = False,
) -> None:
    """Browse the products shown at an expo edition."""
    request = expo_pb.ListProductsRequest(
        edition_id=edition_id, credit_code=credit_code, hs_heading=hs_heading
    )
    show_all_pages(
        ctx,
        rpc=lambda p: p.expo.ListProducts,
        request=request,
        items="products",
        what="products",
        page_size=EXPO_PAGE,
        limit=limit,
        title="Products",
        columns=PRODUCT_COLUMNS,
        json_output=json_output,
    )


HINT_COLUMNS = (
    Column("code", lambda w: w.code),
    Column("name", lambda w: w.name),
    Column("where", lambda w: f"{w.city}, {w.country}"),
    Column("services", lambda w: ", ".join(w.services)),
)


def _submit(ctx: typer.Context, request: expo_pb.SubmitIntentRequest, json_output: bool) -> None:
    reply = run(ctx, lambda p: p.call(p.expo.SubmitIntent, request), request_id=request.request_id)
    renderables = [details(reply.intent, "Intent sent")]
    if reply.warehouses:
        renderables.append(
            listing("Overseas warehouses serving the destination", HINT_COLUMNS, reply.warehouses)
        )
    show(reply, json_output, *renderables)


Quantity = Annotated[int, typer.Option(min=1, help="How many units.", show_default=False)]
Unit = Annotated[str, typer.Option(help="Unit of quantity: piece, kg, set...")]
TargetPrice = Annotated[str, typer.Option(help="Price per unit you aim for, e.g. 'USD 10'.")]
IncotermChoice = Annotated[
    values.Incoterm, typer.Option(case_sensitive=False, help="Incoterm 2020 wanted.")
]
Destination = Annotated[
    str, typer.Option(help="Where the goods go, ISO 3166 alpha-2.", show_default=False)
]
Port = Annotated[str, typer.Option(help="Destination port, e.g. Hamburg.")]
Deadline = Annotated[
    str, typer.Option(help="Answers wanted by (date or ISO date-time).", show_default="in 30 days")
]
HsCode = Annotated[str, typer.Option(help="HS code, 6 to 10 digits.", show_default=False)]
FOB = values.Incoterm("fob")


def _intent(
    request_id: str,
    edition_id: str,
    kind: int,
    hs_code: str,
    quantity: int,
    unit: str,
    target_price: str,
    incoterm: values.Incoterm,
    destination_country: str,
    destination_port: str,
    deadline: str,
) -> expo_pb.SubmitIntentRequest:
    request = expo_pb.SubmitIntentRequest(
        request_id=request_id_of(request_id),
        edition_id=edition_id,
        kind=kind,
        hs_code=hs_code,
        quantity=quantity,
        unit=unit,
        incoterm=values.INCOTERMS.number(incoterm),
        destination_country=destination_country,
        destination_port=destination_port,
        deadline=values.moment(deadline, default_days=30),
    )
    if target_price:
        request.target_price.CopyFrom(values.money(target_price))
    return request


@app.command()
def inquire(
    ctx: typer.Context,
    edition_id: EditionId,
    exhibitor_credit_code: Annotated[
        str, typer.Option("--exhibitor", help="The exhibitor asked.", show_default=False)
    ],
    hs_code: HsCode,
    quantity: Quantity,
    destination_country: Destination,
    product_id: Annotated[str, typer.Option("--product", help="The product asked about.")] = "",
    unit: Unit = "piece",
    target_price: TargetPrice = "",
    incoterm: IncotermChoice = FOB,
    destination_port: Port = "",
    deadline: Deadline = "",
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Send an inquiry to one exhibitor."""
    request = _intent(
        request_id,
        edition_id,
        expo_res.INTENT_KIND_INQUIRY,
        hs_code,
        quantity,
        unit,
        target_price,
        incoterm,
        destination_country,
        destination_port,
        deadline,
    )
    request.exhibitor_credit_code = exhibitor_credit_code
    request.product_id = product_id
    _submit(ctx, request, json_output)


@app.command()
def rfq(
    ctx: typer.Context,
    edition_id: EditionId,
    hs_code: HsCode,
    quantity: Quantity,
    destination_country: Destination,
    unit: Unit = "piece",
    target_price: TargetPrice = "",
    incoterm: IncotermChoice = FOB,
    destination_port: Port = "",
    deadline: Deadline = "",
    max_quotes: Annotated[
        int, typer.Option(min=1, max=50, help="Close after this many quotes.")
    ] = 5,
    request_id: RequestId = "",
    json_output: JsonOutput = False,
) -> None:
    """Send a request for quotation to every exhibitor with products under the HS heading."""
    request = _intent(
        request_id,
        edition_id,
        expo_res.INTENT_KIND_RFQ,
        hs_code,
        quantity,
        unit,
        target_price,
        incoterm,
        destination_country,
        destination_port,
        deadline,
    )
    request.max_quotes = max_quotes
    _submit(ctx, request, json_output)


RESPONSE_COLUMNS = (
    Column("exhibitor", lambda r: r.credit_code),
    Column("answer", lambda r: enum_label(r, "kind")),
    Column("unit price", lambda r: money(r.unit_price), "right"),
    Column("MOQ", lambda r: f"{r.moq:,}" if r.moq else "", "right"),
    Column("lead time", lambda r: f"{r.lead_time_days} days" if r.lead_time_days else ""),
    Column("incoterm", lambda r: enum_label(r, "incoterm").upper()),
    Column("valid until", lambda r: day_of(r.valid_until)),
    Column("reason", lambda r: r.reason),
    Column("answered", lambda r: day_of(r.responded_at)),
)


@app.command()
def answers(
    ctx: typer.Context,
    intent_id: Annotated[
        str, typer.Argument(metavar="INTENT_ID", help="The intent.", show_default=False)
    ],
    json_output: JsonOutput = False,
) -> None:
    """Read an intent with the exhibitors' quotes and declines."""
    request = expo_pb.GetIntentRequest(intent_id=intent_id)
    reply = run(ctx, lambda p: p.call(p.expo.GetIntent, request))
    show(
        reply,
        json_output,
        details(reply.intent, "Intent", omit=("responses",)),
        listing("Answers", RESPONSE_COLUMNS, reply.intent.responses),
    )
