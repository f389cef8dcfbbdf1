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

import pytest

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


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
        # Every request from now on is answered within 5 s of the kill.
        while time.monotonic() - killed_at < 2 or len(_children(server.pid)) < 2:
            assert time.monotonic() - killed_at < 5, "the worker was not replaced in time"
            assert _up(port)
            time.sleep(0.1)
        assert victim not in _children(server.pid)
        assert server.poll() is None  # the service itself never went down
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            assert server.wait(timeout=20) == 0 or server.returncode is not None
        except subprocess.TimeoutExpired:
            server.kill()
            raise
