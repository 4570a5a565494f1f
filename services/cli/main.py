"""The `chuhai` command: one group per role over the platform's public gRPC APIs."""

from __future__ import annotations

from typing import Annotated

import typer

from cli import account, bureau, buyer, events, exporter, notifications, operator
from cli.connection import DEFAULT_DEADLINE_SECONDS, SERVICES, Overrides
from cli.failures import EXIT_CODES_HELP

HELP = """\
Chuhai from the command line: exporters, overseas buyers, warehouse operators and the
commerce bureau each have their command group; `notifications`, `preferences` and
`webhooks` are everyone's own; `events` reads the event topics.

Every call carries your token from the bureau's identity provider: it says who you
are (role, and the firm, buyer or warehouse operator you act for), so no command asks
for that. `chuhai login --token <JWT>` keeps it; `chuhai whoami` shows it.

Every change carries a request id (a new uuid, or --request-id for a scripted retry),
every call a deadline (--timeout). Lists print as tables, or as the API's JSON with
--json."""

EPILOG = f"""\
{EXIT_CODES_HELP}

[bold]Who you are[/bold]: the token given by --token, else CHUHAI_TOKEN, else the one
`chuhai login` saved ($XDG_CONFIG_HOME/chuhai/token, else ~/.config/chuhai/token; mode
0600). `chuhai logout` removes it.

[bold]Where the platform is[/bold]: the services' own environment variables
BOOTH_GRPC_TARGET, EXPO_GRPC_TARGET, WAREHOUSE_GRPC_TARGET, BUREAU_GRPC_TARGET,
NOTIFY_GRPC_TARGET (else GRPC_HOST and the *_GRPC_PORT), BUREAU_WEB_HOST and
BUREAU_WEB_PORT (or BUREAU_WEB_URL) and KAFKA_BOOTSTRAP_SERVERS, unless the options above
say otherwise.

[bold]Examples[/bold]

  chuhai login --token "$(cat ~/exporter.jwt)" && chuhai whoami
  chuhai exporter show
  chuhai --token "$OFFICER_JWT" exporter show --credit-code 91411000MA9XXXXXXX
  chuhai --booth-target booth.example:50051 bureau fair show canton-139 --json
  chuhai bureau watch
  chuhai notifications list --unread"""

app = typer.Typer(
    name="chuhai",
    help=HELP,
    epilog=EPILOG,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(exporter.app, name="exporter")
app.add_typer(buyer.app, name="buyer")
app.add_typer(operator.app, name="operator")
app.add_typer(bureau.app, name="bureau")
app.add_typer(notifications.app, name="notifications", rich_help_panel="Everyone's own")
app.add_typer(notifications.preferences_app, name="preferences", rich_help_panel="Everyone's own")
app.add_typer(notifications.webhooks_app, name="webhooks", rich_help_panel="Everyone's own")
app.add_typer(events.app, name="events")
app.command(rich_help_panel="Who you are")(account.login)
app.command(rich_help_panel="Who you are")(account.logout)
app.command(rich_help_panel="Who you are")(account.whoami)


def _target(service: str) -> object:
    return typer.Option(
        f"--{service}-target",
        help=f"host:port of the {service} service \\[env: {service.upper()}_GRPC_TARGET]",
        show_default=False,
        rich_help_panel="Where the platform is",
    )


@app.callback()
def connect(
    ctx: typer.Context,
    booth_target: Annotated[str, _target("booth")] = "",
    expo_target: Annotated[str, _target("expo")] = "",
    warehouse_target: Annotated[str, _target("warehouse")] = "",
    bureau_target: Annotated[str, _target("bureau")] = "",
    notify_target: Annotated[str, _target("notify")] = "",
    bureau_web_url: Annotated[
        str,
        typer.Option(
            "--bureau-web-url",
            envvar="BUREAU_WEB_URL",
            help="The bureau dashboard's address, for reports",
            show_default="from BUREAU_WEB_HOST and BUREAU_WEB_PORT",
            rich_help_panel="Where the platform is",
        ),
    ] = "",
    kafka: Annotated[
        str,
        typer.Option(
            "--kafka",
            help="Kafka bootstrap servers, for `events` \\[env: KAFKA_BOOTSTRAP_SERVERS]",
            show_default=False,
            rich_help_panel="Where the platform is",
        ),
    ] = "",
    token: Annotated[
        str,
        typer.Option(
            "--token",
            help="Call with this token (a JWT) \\[env: CHUHAI_TOKEN]; else the one "
            "`chuhai login` saved.",
            show_default=False,
            rich_help_panel="Who you are",
        ),
    ] = "",
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            envvar="CHUHAI_TIMEOUT",
            min=0.1,
            help="Deadline of each call, in seconds.",
        ),
    ] = DEFAULT_DEADLINE_SECONDS,
) -> None:
    given = dict(
        zip(
            SERVICES,
            (booth_target, expo_target, warehouse_target, bureau_target, notify_target),
            strict=True,
        )
    )
    ctx.obj = Overrides(
        targets={service: target for service, target in given.items() if target},
        bureau_web_url=bureau_web_url,
        kafka_bootstrap_servers=kafka,
        deadline_seconds=timeout,
        token=token,
    )
