"""Render the demo province's Excel report the way an official's computer would show it.

    .venv/bin/python tools/render_report.py [--language vi|en] [--out docs/images]

Builds a throwaway database (an embedded PostgreSQL in a temporary directory, or a fresh
database on the server named by DATABASE_URL), loads `congdongso demo` into it, downloads
the demo province official's `report.xlsx` through the API (in-process), converts it to PDF
with LibreOffice (`soffice --headless --convert-to pdf`) and the first pages to PNG
(`pdftoppm -png -r 60`). Needs `apt-get install libreoffice-calc poppler-utils` and the dev
dependencies (httpx). Prints where the XLSX, the PDF and the PNGs are.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import embedded, migrate  # noqa: E402
from api.app import create_app  # noqa: E402
from api.config import Settings  # noqa: E402
from api.demo import DEMO_PASSWORD, DEMO_PROVINCE, DEMO_USERS, create_demo  # noqa: E402

PROVINCE_OFFICIAL = next(phone for phone, role, _ in DEMO_USERS if role == "province_official")


async def fresh_database(server_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return embedded.with_database(server_dsn, name)


async def drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def download(dsn: str, work: Path, language: str, period: str) -> tuple[Path, float]:
    from litestar.testing import AsyncTestClient

    # A throwaway database: its own cell-key secret, not anyone's real one.
    secret = "render-" + uuid.uuid4().hex
    settings = Settings(env="development", data_dir=str(work), cell_key_secret=secret)
    await create_demo(dsn, settings)
    async with AsyncTestClient(app=create_app(dsn, settings)) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"phone": PROVINCE_OFFICIAL, "password": DEMO_PASSWORD}
        )
        login.raise_for_status()
        headers = {
            "Authorization": f"Bearer {login.json()['accessToken']}",
            "Accept-Language": language,
        }
        started = time.perf_counter()
        response = await client.get(
            f"/api/v1/stats/areas/{DEMO_PROVINCE}/report.xlsx",
            params={"period": period},
            headers=headers,
        )
        took = time.perf_counter() - started
        response.raise_for_status()
    path = work / f"report-{DEMO_PROVINCE}-{language}.xlsx"
    path.write_bytes(response.content)
    return path, took


def render(xlsx: Path, out: Path, pages: int) -> list[Path]:
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if soffice is None or shutil.which("pdftoppm") is None:
        raise SystemExit(
            "needs LibreOffice and poppler: apt-get install libreoffice-calc poppler-utils"
        )
    profile = xlsx.parent / "lo-profile"  # a private profile: no clash with a running office
    subprocess.run(  # noqa: S603
        [soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--convert-to", "pdf",
         "--outdir", str(xlsx.parent), str(xlsx)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    pdf = xlsx.with_suffix(".pdf")
    prefix = xlsx.parent / "page"
    subprocess.run(  # noqa: S603
        ["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", str(pages), str(pdf), str(prefix)],  # noqa: S607
        check=True, timeout=120,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    made = []
    for number, page in enumerate(sorted(xlsx.parent.glob("page-*.png")), start=1):
        target = out / f"report-page-{number}.png"
        shutil.copyfile(page, target)
        made.append(target)
    print(f"PDF: {pdf}")
    return made


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--language", choices=("vi", "en"), default="vi")
    parser.add_argument("--period", default="current")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--pages", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="congdongso-render-"))
    server_dsn = os.environ.get("DATABASE_URL") or embedded.start(work / "pg")
    name = f"cds_render_{uuid.uuid4().hex[:8]}"
    dsn = await fresh_database(server_dsn, name)
    try:
        await migrate.upgrade_async(dsn)
        xlsx, took = await download(dsn, work, args.language, args.period)
    finally:
        await drop_database(server_dsn, name)
    print(f"XLSX: {xlsx} ({xlsx.stat().st_size:,} bytes, {took:.2f} s through the API)")
    for page in render(xlsx, args.out, args.pages):
        print(f"PNG: {page}")


if __name__ == "__main__":
    asyncio.run(main())
