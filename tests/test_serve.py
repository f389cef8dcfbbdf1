"""The served process model: a worker killed under load is replaced and the service answers
again within seconds; SIGTERM stops everything."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from api.stats.folder import FOLDER
from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POOL_MIN = 2  # connections each worker opens at start (the default CONGDONGSO_POOL_MIN)


async def _backends(dsn: str) -> tuple[int, int]:
    """The request pools' connections and the folders' connections of every worker."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            """SELECT count(*) FILTER (WHERE application_name = 'congdongso') AS requests,
                      count(*) FILTER (WHERE application_name = $1) AS folders
               FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()""",
            FOLDER,
        )
        return int(row["requests"]), int(row["folders"])
    finally:
        await conn.close()


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """Live worker processes (a killed one stays listed as a zombie until reaped)."""
    alive = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(int(child))
    return alive


@pytest.mark.anyio
async def test_a_killed_worker_is_replaced_and_sigterm_stops_the_service(
    dsn: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(_serve_and_kill, dsn, tmp_path)


def _serve_and_kill(dsn: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "CONGDONGSO_WORKERS": "2",
        "CONGDONGSO_DATA_DIR": str(tmp_path),
        "CONGDONGSO_CARD_CACHE": "false",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (_up(port) and len(_children(server.pid)) == 2):
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        victim = _children(server.pid)[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        # Within 5 s of the kill the worker is replaced and the service answers (a request
        # already queued on the killed worker's socket may fail: that is the kill itself).
        while victim in _children(server.pid):
            assert time.monotonic() - killed_at < 5, "the worker did not die"
            time.sleep(0.05)
        while not (len(_children(server.pid)) == 2 and _up(port)):
            assert time.monotonic() - killed_at < 5, "the worker was not replaced in time"
            time.sleep(0.1)
        assert victim not in _children(server.pid)
        assert all(_up(port) for _ in range(20))  # and it keeps answering
        # Stop only once the new worker has started: its pool is open and its folder, the
        # last thing a worker starts, is connected (a worker still starting would only be
        # killed after the stop timeout). Counting all backends was not enough: a worker
        # opens more than its pool, so the survivor alone could reach the count.
        while True:
            requests, folders = asyncio.run(_backends(dsn))
            if requests >= 2 * POOL_MIN and folders == 2:
                break
            assert time.monotonic() - killed_at < 30, "the new worker never opened its pool"
            time.sleep(0.1)
        assert server.poll() is None  # the service itself never went down
    finally:
        stopping = time.monotonic()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
        assert time.monotonic() - stopping < 8, "SIGTERM did not stop the service promptly"


def _get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310  # http only
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        series, value = line.rsplit(" ", 1)
        if "{" in series:
            base, rest = series.split("{", 1)
            found = ",".join(sorted(rest.rstrip("}").split(",")))
        else:
            base, found = series, ""
        if base == name and found == wanted:
            return float(value)
    return 0.0


@pytest.mark.anyio
async def test_metrics_add_up_across_workers_and_logs_are_json(dsn: str, tmp_path: Path) -> None:
    await asyncio.to_thread(_serve_and_scrape, dsn, tmp_path)


def _serve_and_scrape(dsn: str, tmp_path: Path) -> None:
    port = _free_port()
    token = "scrape-token-for-the-test"
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "PORT": str(port),
        "CONGDONGSO_WORKERS": "2",
        "CONGDONGSO_DATA_DIR": str(tmp_path),
        "CONGDONGSO_CARD_CACHE": "false",
        "CONGDONGSO_METRICS_TOKEN": token,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"left over from an earlier run")
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve"],
            cwd=ROOT,
            env=env,
            stdout=stderr,
            stderr=stderr,
        )
    try:
        deadline = time.monotonic() + 60
        while not (_up(port) and len(_children(server.pid)) == 2):
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert not (shared / "counter_1.db").exists(), "serve empties the metrics directory"
        scraper = {"Authorization": f"Bearer {token}"}
        before = _get(port, "/metrics", scraper)[1]
        healthz = 40
        for _ in range(healthz):
            assert _get(port, "/healthz")[0] == 200
        expired = {"Authorization": "Bearer not-a-token", "X-Request-ID": "field-day-0001"}
        for _ in range(5):
            status, body, headers = _get(port, "/api/v1/me", expired)
            assert status == 401
        assert headers["x-request-id"] == "field-day-0001"
        assert '"instance":"urn:congdongso:request:field-day-0001"' in body
        first = _get(port, "/metrics", scraper)
        second = _get(port, "/metrics", scraper)
        assert first[2]["content-type"].count("charset") == 1
        for scrape in (first[1], second[1]):
            counted = _sample(
                scrape, "http_requests_total", method="GET", route="/healthz", status="200"
            )
            seen = counted - _sample(
                before, "http_requests_total", method="GET", route="/healthz", status="200"
            )
            assert seen == healthz  # every worker's requests, whichever worker answers
            me = {"method": "GET", "route": "/api/v1/me"}
            assert _sample(scrape, "http_requests_total", **me, status="401") == 5
            assert _sample(scrape, "http_requests_total", **me, status="500") == 0
            assert "db_pool_size{worker=" in scrape
            assert "process_resident_memory_bytes{worker=" in scrape
            # One worker leads the folder; its folds reach whichever worker is scraped.
            assert _sample(scrape, "stat_folds_total") >= 1
            assert time.time() - _sample(scrape, "stat_last_fold_timestamp_seconds") < 30
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            raise
    lines = log.read_text().splitlines()
    assert lines, "the server logged nothing"
    for line in lines:
        entry = json.loads(line)  # every line, the server's own too, is one JSON object
        assert {"at", "level", "logger", "msg"} <= set(entry)
    rejected = [
        json.loads(line)
        for line in lines
        if '"route":"/api/v1/me"' in line and '"logger":"congdongso.access"' in line
    ]
    assert rejected
    assert all(entry["status"] == 401 for entry in rejected)
    assert all(entry["requestId"] == "field-day-0001" for entry in rejected)
    assert any('"logger":"_granian"' in line for line in lines)
    assert "not-a-token" not in log.read_text()
