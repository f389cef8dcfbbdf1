"""Vietnamese mobile numbers: accept ``0…``, ``84…`` and ``+84…``; store ``+84…``."""

from __future__ import annotations

import re

from api.errors import ValidationFailed, invalid
from api.i18n import N_

_SEPARATORS = re.compile(r"[\s.()-]")
# Mobile numbers after the trunk prefix: 9 digits starting with 3, 5, 7, 8 or 9.
_NATIONAL = re.compile(r"^[35789][0-9]{8}$")


def normalize_phone(raw: str) -> str | None:
    """``"0912 345 678"`` → ``"+84912345678"``; ``None`` when it is not a Vietnamese mobile."""
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+84"):
        national = digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        national = digits[2:]
    elif digits.startswith("0"):
        national = digits[1:]
    else:
        return None
    return f"+84{national}" if _NATIONAL.match(national) else None


def require_phone(raw: str, field: str = "phone") -> str:
    """The normalized number, or a field error explaining the expected format."""
    phone = normalize_phone(raw)
    if phone is None:
        raise invalid_phone(field)
    return phone


def invalid_phone(field: str = "phone") -> ValidationFailed:
    return invalid(field, "format", N_("Enter a Vietnamese mobile number, e.g. 0912345678."))
