"""Record keys of the cell key method: a pseudo-random number in 0..255 for each counted
unit (a person, a household, a learner), the same every time the unit is counted.

A key is the first byte of HMAC-SHA256(secret, unit id). The secret never leaves the server:
without it nobody can tell which keys a household brings to a cell, and so which noise a
published figure carries. The same derivation runs in SQL (the counters are kept by SQL
statements): HMAC is sha256((K ⊕ opad) ‖ sha256((K ⊕ ipad) ‖ message)), and PostgreSQL has
``sha256()`` built in, so the statements take the two padded keys as parameters.

Unit ids: a household is its id; a person is ``<household id>:<member id>`` (member ids are
stable across visits, so a re-visit keeps the keys); a learner is their learner id.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Final

from api.config import Settings, generated_secret

BLOCK: Final = 64  # SHA-256's block size, for the HMAC pads
KEPT_KEYS: Final = 50_000  # keys kept per process (a few MB)


def sql_key(message: str, inner: str, outer: str) -> str:
    """The SQL expression of a record key for the SQL text ``message``, with the padded keys
    as parameters ``inner`` and ``outer`` (e.g. ``"$2"``, ``"$3"``)."""
    return (
        f"get_byte(sha256({outer}::bytea || sha256({inner}::bytea"
        f" || convert_to({message}, 'UTF8'))), 0)"
    )


class RecordKeys:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the cell-key secret must not be empty")
        self._secret = secret
        key = hashlib.sha256(secret).digest() if len(secret) > BLOCK else secret
        key = key.ljust(BLOCK, b"\0")
        self.inner = bytes(b ^ 0x36 for b in key)
        self.outer = bytes(b ^ 0x5C for b in key)
        # HMAC with its two padded-key blocks hashed once: writers key every person they
        # count, and copying a hash state is a third of a fresh HMAC's cost.
        self._inner_state = hashlib.sha256(self.inner)
        self._outer_state = hashlib.sha256(self.outer)
        # Keys already derived: a household's is taken twice per submission (its indicators,
        # its coverage), and a re-visit keys the same people again.
        self._kept: dict[str, int] = {}

    def of(self, unit: str) -> int:
        """The first byte of HMAC-SHA256(secret, unit) (tests/test_stats.py compares it with
        ``hmac`` and with the SQL)."""
        found = self._kept.get(unit)
        if found is None:
            inner = self._inner_state.copy()
            inner.update(unit.encode())
            outer = self._outer_state.copy()
            outer.update(inner.digest())
            found = outer.digest()[0]
            if len(self._kept) >= KEPT_KEYS:  # a bound, not an LRU: forgetting all is cheap
                self._kept.clear()
            self._kept[unit] = found
        return found

    @property
    def params(self) -> tuple[bytes, bytes]:
        """The padded keys, for statements built with :func:`sql_key`."""
        return self.inner, self.outer


def cell_key_secret(settings: Settings) -> bytes:
    """From the environment, or generated once under the data folder (like the JWT secret)."""
    if settings.cell_key_secret:
        return settings.cell_key_secret.encode()
    if settings.production:
        raise RuntimeError("CONGDONGSO_CELL_KEY_SECRET must be set when CONGDONGSO_ENV=production")
    return generated_secret(Path(settings.data_dir) / "cell_key_secret").encode()


def record_keys(settings: Settings) -> RecordKeys:
    return RecordKeys(cell_key_secret(settings))
