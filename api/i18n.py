"""Languages: Accept-Language negotiation, Babel catalogs and CLDR formatting.

Catalogs are named by language only (``i18n/vi``, ``i18n/en``); ``vi`` is the default.
Message ids are English source strings marked with ``N_`` where they are defined and
translated with :func:`translate` where they are shown, in the caller's language.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

from babel import Locale
from babel.numbers import format_decimal, format_percent
from babel.support import Translations

CATALOG_DIR: Final = Path(__file__).resolve().parent.parent / "i18n"
LANGUAGES: Final = ("vi", "en")
DEFAULT: Final = "vi"
# CLDR locales used for formatting numbers and dates per language.
FORMAT_LOCALES: Final = {"vi": Locale.parse("vi_VN"), "en": Locale.parse("en_US")}


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated later, when the language is known."""
    return message


def negotiate(accept_language: str | None) -> str:
    """Pick ``vi`` or ``en`` from an Accept-Language header (q-values honoured)."""
    if not accept_language:
        return DEFAULT
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().replace("_", "-").split("-")[0].lower()
        if quality > 0 and language:
            ranked.append((-quality, index, language))
    for _, _, language in sorted(ranked):
        if language in LANGUAGES:
            return language
        if language == "*":
            return DEFAULT
    return DEFAULT


@cache
def catalog(language: str) -> Translations:
    mo = CATALOG_DIR / language / "LC_MESSAGES" / "messages.mo"
    if not mo.exists():
        # Babel would silently fall back to untranslated ids; fail loudly instead.
        raise RuntimeError(f"missing compiled catalog {mo}: run `make compile-catalogs`")
    with mo.open("rb") as fp:
        return Translations(fp, domain="messages")


def translate(language: str, message: str, params: dict[str, object] | None = None) -> str:
    text = catalog(language if language in LANGUAGES else DEFAULT).gettext(message)
    return text % params if params else text


def format_number(value: float | int, language: str) -> str:
    return format_decimal(value, locale=FORMAT_LOCALES[language])


# One decimal; Vietnamese writes a (no-break) space before the percent sign.
_RATE_PATTERNS: Final = {"vi": "#,##0.0\u00a0%", "en": "#,##0.0%"}


def format_rate(value: float, language: str) -> str:
    """0.756 → "75,6 %" (vi) or "75.6%" (en)."""
    return format_percent(value, format=_RATE_PATTERNS[language], locale=FORMAT_LOCALES[language])
