"""Users, teams and the tokens that sign them in."""

from __future__ import annotations

import uuid
from typing import Literal

from msgspec import UNSET, UnsetType

from schemas.base import AreaCode, Label, Password, Phone, Schema, Secret, ShortText

Role = Literal["admin", "province_official", "ward_official", "team_member", "resident"]


class User(Schema):
    id: uuid.UUID
    phone: str
    role: Role
    area_code: str | None
    display_name: str | None
    team_id: uuid.UUID | None
    disabled: bool = False


class LoginRequest(Schema):
    phone: Phone
    password: Secret


class Tokens(Schema):
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - not a secret


class RefreshRequest(Schema):
    refresh_token: ShortText


class LogoutRequest(Schema):
    refresh_token: ShortText | None = None


class NewUser(Schema):
    phone: Phone
    password: Password
    role: Role
    area_code: AreaCode | None = None
    display_name: Label | None = None
    team_id: uuid.UUID | None = None


class UserChange(Schema):
    """Only the fields present are changed; ``teamId: null`` takes a user out of a team."""

    role: Role | UnsetType = UNSET
    area_code: AreaCode | UnsetType = UNSET
    display_name: Label | UnsetType | None = UNSET
    team_id: uuid.UUID | UnsetType | None = UNSET
    disabled: bool | UnsetType = UNSET
    password: Password | UnsetType = UNSET


class NewTeam(Schema):
    ward_code: AreaCode
    name: Label
    id: uuid.UUID | None = None  # clients may generate it; creating twice is harmless


class Team(Schema):
    id: uuid.UUID
    ward_code: str
    name: str
    member_count: int
