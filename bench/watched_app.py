"""Bench-only ASGI entry: the API under bench/loop_watch.py's watch of each worker's loop."""

from api.asgi import app as api_app
from bench.loop_watch import watched

app = watched(api_app)
