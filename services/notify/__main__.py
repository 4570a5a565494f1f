"""`python -m notify` serves notify's API and runs its consumer, delivery loop and
daily digest until SIGINT or SIGTERM."""

import asyncio

from notify.host import NotifyHost
from runtime.adapters.logging import configure_logging
from runtime.adapters.service import serve_until_signalled
from runtime.adapters.settings import Settings

settings = Settings()
configure_logging("notify", settings.log_level)
asyncio.run(serve_until_signalled(NotifyHost(settings)))
