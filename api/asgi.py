"""The ASGI application for the server workers (``congdongso serve`` sets DATABASE_URL)."""

from __future__ import annotations

from api.app import create_app
from api.config import settings_from_env
from api.logs import configure

settings = settings_from_env()
configure(settings.log_level)
if not settings.database_url:
    raise RuntimeError("DATABASE_URL is not set: start the server with `congdongso serve`")
app = create_app(settings.database_url, settings)
