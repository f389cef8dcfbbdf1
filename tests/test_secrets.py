"""Generated secrets: written whole, shared by processes that start together, never empty."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from api.config import Settings, generated_secret, jwt_secret
from api.stats.keys import cell_key_secret


def _read(path: str) -> str:
    return generated_secret(Path(path))


def test_processes_starting_together_share_one_whole_secret(tmp_path: Path) -> None:
    path = tmp_path / "jwt_secret"
    context = multiprocessing.get_context("fork")  # started together, as server workers are
    with context.Pool(8) as pool:
        secrets = pool.map(_read, [str(path)] * 32, chunksize=1)
    assert len(set(secrets)) == 1
    assert len(secrets[0]) >= 64
    assert path.read_text().strip() == secrets[0]
    assert [p.name for p in tmp_path.iterdir()] == ["jwt_secret"]  # nothing left aside


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "jwt_secret").write_text("")
    with pytest.raises(RuntimeError, match="empty"):
        jwt_secret(Settings(data_dir=str(tmp_path)))


def test_each_secret_has_its_own_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path))
    assert jwt_secret(settings) != cell_key_secret(settings).decode()
    assert jwt_secret(settings) == jwt_secret(settings)
    with pytest.raises(RuntimeError, match="CONGDONGSO_CELL_KEY_SECRET"):
        cell_key_secret(Settings(env="production", data_dir=str(tmp_path)))
