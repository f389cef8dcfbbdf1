"""Who is calling: short-lived JWT access tokens, the Principal they carry, role guards.

The Principal is rebuilt from the token's claims without a database round-trip; roles and
areas are re-read from the database at every refresh, so a change takes effect within one
access-token lifetime (and refresh tokens are revoked when a role changes).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal, Self, cast

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from api.errors import Forbidden

Role = Literal["admin", "province_official", "ward_official", "team_member", "resident"]
ROLES: Final[tuple[Role, ...]] = (
    "admin",
    "province_official",
    "ward_official",
    "team_member",
    "resident",
)
# Higher rank manages lower ranks.
RANK: Final[dict[str, int]] = {role: len(ROLES) - i for i, role in enumerate(ROLES)}
OFFICIALS: Final[tuple[Role, ...]] = ("admin", "province_official", "ward_official")

ISSUER: Final = "congdongso"
AUDIENCE: Final = "congdongso-api"
ALGORITHM: Final = "HS256"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    role: Role
    area_id: int | None  # None for admins (the whole country)
    province_id: int | None
    team_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None


async def principal_from_token(token: Token, _: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    extras = token.extras
    try:
        return Principal(
            user_id=uuid.UUID(token.sub),
            role=extras["role"],
            area_id=extras.get("area"),
            province_id=extras.get("prov"),
            team_id=uuid.UUID(extras["team"]) if extras.get("team") else None,
            household_id=uuid.UUID(extras["hh"]) if extras.get("hh") else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        # A correctly signed token with the wrong shape: treat as not signed in.
        raise NotAuthorizedException() from exc


def _hashable(value: str | Sequence[str] | None) -> str | tuple[str, ...] | None:
    return value if isinstance(value, str | None) else tuple(value)


class VerifiedToken(Token):
    """A token whose check is remembered for its exact text.

    A phone sends the same access token with every request for its 15-minute life, and
    checking it (base64, HMAC, JSON, claims, building the Token) costs about as much as a
    small query. The same text always checks the same way, so the decoded token is kept,
    keyed by the text and the checking settings; expiry is still checked on every use.
    """

    _verified: ClassVar[OrderedDict[tuple[Any, ...], VerifiedToken]] = OrderedDict()
    _capacity: ClassVar[int] = 10_000

    @classmethod
    def decode(
        cls,
        encoded_token: str,
        secret: str,
        algorithm: str,
        audience: str | Sequence[str] | None = None,
        issuer: str | Sequence[str] | None = None,
        require_claims: Sequence[str] | None = None,
        verify_exp: bool = True,
        verify_nbf: bool = True,
        strict_audience: bool = False,
    ) -> Self:
        key = (
            encoded_token,
            secret,
            algorithm,
            _hashable(audience),
            _hashable(issuer),
            _hashable(require_claims),
            verify_exp,
            verify_nbf,
            strict_audience,
        )
        token = cls._verified.get(key)
        if token is None:
            token = super().decode(
                encoded_token,
                secret,
                algorithm,
                audience,
                issuer,
                require_claims,
                verify_exp,
                verify_nbf,
                strict_audience,
            )
            cls._verified[key] = token
            if len(cls._verified) > cls._capacity:
                cls._verified.popitem(last=False)
        elif verify_exp and token.exp <= datetime.now(UTC):
            del cls._verified[key]
            raise NotAuthorizedException("Invalid token")  # as Token.decode says it
        return cast(Self, token)


def jwt_auth(secret: str, ttl_seconds: int) -> JWTAuth[Principal, Token]:
    return JWTAuth[Principal, Token](
        retrieve_user_handler=principal_from_token,
        token_cls=VerifiedToken,
        token_secret=secret,
        algorithm=ALGORITHM,
        default_token_expiration=timedelta(seconds=ttl_seconds),
        accepted_issuers=[ISSUER],
        accepted_audiences=[AUDIENCE],
        require_claims=["exp", "sub", "iat"],
        exclude=["^/schema"],  # the OpenAPI document and its browsable UI are public
    )


def issue_access_token(secret: str, ttl_seconds: int, principal: Principal) -> str:
    now = datetime.now(UTC)
    token = Token(
        sub=str(principal.user_id),
        exp=now + timedelta(seconds=ttl_seconds),
        iat=now,
        iss=ISSUER,
        aud=AUDIENCE,
        jti=uuid.uuid4().hex,
        extras={
            "role": principal.role,
            "area": principal.area_id,
            "prov": principal.province_id,
            "team": str(principal.team_id) if principal.team_id else None,
            "hh": str(principal.household_id) if principal.household_id else None,
        },
    )
    return token.encode(secret, ALGORITHM)


def requires_role(
    *roles: Role,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]:
    """A guard: the caller's role must be one of ``roles`` (403 otherwise). Async, because
    Litestar runs a plain function guard in a worker thread."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            return  # Litestar answers OPTIONS itself, before (and without) authentication
        user = connection.scope.get("user")
        if not isinstance(user, Principal) or user.role not in roles:
            raise Forbidden()

    return guard
