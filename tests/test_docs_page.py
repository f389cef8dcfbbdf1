"""``make docs-check``: the API reference page (/schema) renders in headless Chromium with no
network at all: every script, style and the document come from the server itself.

Chromium resolves every host but 127.0.0.1 to nothing, so a CDN load would fail and leave
a white page. The check reads the rendered DOM (Swagger UI lists the operations) and a
screenshot (not blank). Run by ``make docs-check`` (Debian: ``apt-get install chromium``),
not by ``make test``.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import httpx
import pytest

from tests.test_contract import live_server  # noqa: F401  # the served app, signed in

pytestmark = pytest.mark.docs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OFFLINE = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # No network: every name but the local server's resolves to nothing.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--window-size=1280,900",
    "--virtual-time-budget=15000",
]


def _pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (enough to tell blank)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, width, height, data = 8, 0, 0, b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            data += body
        position += 12 + length
    return width, height, zlib.decompress(data)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_reference_page_renders_offline(
    live_server: tuple[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    base, _ = live_server
    page = httpx.get(f"{base}/schema")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert "https://" not in page.text.split("<body", 1)[0], "the page loads nothing remote"
    csp = page.headers["content-security-policy"]
    assert "http" not in csp, csp
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        assert httpx.get(f"{base}/schema/assets/{asset}").status_code == 200
    assert httpx.get(f"{base}/schema/assets/swagger-editor.js").status_code == 404

    assert CHROMIUM is not None
    profile = tmp_path / "profile"
    rendered = subprocess.run(  # noqa: S603  # a fixed command
        [
            CHROMIUM,
            *OFFLINE,
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--dump-dom",
            f"{base}/schema",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    dom = rendered.stdout
    console = [line for line in rendered.stderr.splitlines() if "CONSOLE" in line]
    assert "swagger-ui" in dom
    assert dom.count("opblock-summary") >= 40, console
    assert "getSurveyVersion" in dom or "/api/v1/surveys/{surveyId}/versions/{version}" in dom

    # DOCS_SCREENSHOT=path keeps the picture for a person to look at.
    shot = Path(os.environ.get("DOCS_SCREENSHOT") or tmp_path / "schema.png")
    subprocess.run(  # noqa: S603
        [
            CHROMIUM,
            *OFFLINE,
            f"--user-data-dir={profile}",
            f"--screenshot={shot}",
            f"{base}/schema",
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    width, height, pixels = _pixels(shot.read_bytes())
    assert (width, height) == (1280, 900)
    # A blank page is all white (0xff) apart from the per-row filter bytes.
    inked = sum(1 for byte in pixels if byte not in (0x00, 0xFF))
    assert inked / len(pixels) > 0.01, "the screenshot is blank"
