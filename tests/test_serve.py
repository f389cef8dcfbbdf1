"""The served process model: a worker killed under load is replaced and the service answers
again within seconds; SIGTERM stops everything."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


POOL_MIN = 2  # connections each worker opens at start (the default CONGDONGSO_POOL_MIN)


async def _backends(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                """SELECT count(*) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()"""
            )
        )
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
        # Stop only once the new worker has opened its pool (a worker still starting would
        # only be killed after the stop timeout).
        while asyncio.run(_backends(dsn)) < 2 * POOL_MIN:
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
