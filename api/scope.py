"""Scope: which areas a caller may see. Out-of-scope reads answer 404, never 403."""

from __future__ import annotations

from api.auth import Principal
from api.queries.areas import AreaRecord


def covers(principal: Principal, area: AreaRecord) -> bool:
    """Is ``area`` inside the caller's own area?"""
    if principal.role == "admin":
        return True
    if principal.role == "province_official":
        return area.province_id == principal.province_id
    return area.id == principal.area_id
