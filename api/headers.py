"""Security headers on every answer, and no caching of what was not meant to be cached.

It runs on every message the app sends, so it also covers answers that never reach a
handler (sign-in rejections, 404s, errors). Headers a handler set itself are left as they
are: the public statistics card is cacheable, a survey version is immutable.
"""

from __future__ import annotations

from typing import Final

from litestar.types import Message, Scope

# The API answers JSON, CSV, XLSX and SVG: nothing in them may load or run anything.
API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'; sandbox"
# The API reference page (/schema) runs Swagger UI from this origin (/schema/assets, from a
# pinned package, never a CDN), with its page's inline start-up script and the styles it
# sets; it reads the OpenAPI document and calls the API on this origin. Nothing else.
DOCS_POLICY: Final = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)
ALWAYS: Final = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)


async def security_headers(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: Litestar calls it for every message the app sends, including
    the answers of its own middleware and exception handling, which an app middleware would
    not see."""
    if message["type"] != "http.response.start":
        return
    headers = list(message.get("headers", []))
    present = {bytes(name).lower() for name, _ in headers}
    for name, value in ALWAYS:
        if name not in present:
            headers.append((name, value))
    if b"content-security-policy" not in present:
        docs = str(scope.get("path", "")).startswith("/schema")
        headers.append((b"content-security-policy", (DOCS_POLICY if docs else API_POLICY).encode()))
    # Tokens and personal data must not stay in shared or browser caches: whatever a handler
    # did not mark cacheable is not stored.
    if b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    message["headers"] = headers
