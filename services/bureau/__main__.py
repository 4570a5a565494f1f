"""`python -m bureau` serves; `python -m bureau rebuild` prints the figures recomputed
from every outbox, for comparison with the live ones."""

import argparse
import asyncio
import json
import sys

from bureau.host import BureauHost
from bureau.messages import dashboard_json
from bureau.rebuild import rebuild_from_outboxes
from runtime.adapters.logging import configure_logging
from runtime.adapters.mongo import connect_mongo
from runtime.adapters.service import serve_until_signalled
from runtime.adapters.settings import Settings


async def rebuild(settings: Settings) -> None:
    mongo = await connect_mongo(settings.mongodb_uri, app_name="chuhai-bureau-rebuild")
    try:
        figures = await rebuild_from_outboxes(mongo, settings)
    finally:
        await mongo.close()
    sys.stdout.write(json.dumps(dashboard_json(figures), indent=2) + "\n")


parser = argparse.ArgumentParser(prog="python -m bureau", description=__doc__)
parser.add_argument("command", nargs="?", choices=("serve", "rebuild"), default="serve")
command = parser.parse_args().command
settings = Settings()
configure_logging("bureau", settings.log_level)
if command == "rebuild":
    asyncio.run(rebuild(settings))
else:
    asyncio.run(serve_until_signalled(BureauHost(settings)))
