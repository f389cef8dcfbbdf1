"""Cộng đồng số: the HTTP API for community digital technology teams."""

from api.app import create_app

__all__ = ["create_app"]
