"""Users, teams and the tokens that sign them in."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, UnsetType

from schemas.base import NO_NUL, AreaCode, Label, Password, Phone, Schema, Secret, ShortText

Role = Literal["admin", "province_official", "ward_official", "team_member", "resident"]
# The roles an official gives: residents join with their team's invite (POST /residents).
StaffRole = Literal["admin", "province_official", "ward_official", "team_member"]


class User(Schema):
    id: uuid.UUID
    phone: str
    role: Role
    area_code: str | None
    display_name: str | None
    team_id: uuid.UUID | None
    disabled: bool = False
    # Created by someone else and not yet activated by its holder (no password yet).
    pending_activation: bool = False
    activation_expires_at: datetime | None = None  # while pending: when the code expires


class PendingUser(User, kw_only=True):
    """An account waiting for its holder, with the one-time code to hand to them.

    The code is shown only in this answer (it is stored as a digest): print it or show it
    as a QR code; the holder sets their password with it (``POST /auth/activate``).
    """

    activation_code: str


# Typed from paper or read from a QR code: ``ABCD-EFGH-…``; case, spaces and dashes ignored.
ActivationCode = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]


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


class Activation(Schema):
    """The holder's first sign-in: the code they were given and the password they choose."""

    phone: Phone
    activation_code: ActivationCode
    password: Password


class NewUser(Schema):
    """The account is created pending activation: its holder chooses the password."""

    phone: Phone
    role: StaffRole
    area_code: AreaCode | None = None
    display_name: Label | None = None
    team_id: uuid.UUID | None = None
    # Only null: a password is refused (400 ``password_not_allowed``, api/errors.py), so
    # that a client still sending one learns at once that it will never work.
    password: (
        Annotated[
            None,
            Meta(
                description="Always null or absent: the holder sets the password with the "
                "activation code (a password is refused, 400 password_not_allowed)."
            ),
        ]
        | UnsetType
    ) = UNSET


class UserChange(Schema):
    """Only the fields present are changed; ``teamId: null`` takes a user out of a team."""

    role: StaffRole | UnsetType = UNSET
    area_code: AreaCode | UnsetType = UNSET
    display_name: Label | UnsetType | None = UNSET
    team_id: uuid.UUID | UnsetType | None = UNSET
    disabled: bool | UnsetType = UNSET
    # Only one's own: another account gets an activation code (POST /users/{id}/activation).
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
