"""The indicator rules in Python (``Catalog.measure``, used by writers) count exactly what the
same rules in SQL count (``measures_lateral``, used by ``stats rebuild``): both are generated
from the catalog, and the counters stay exact only if they agree on every submission.

Two fuzzes against PostgreSQL: a property-based one (hypothesis, which shrinks a failure to
its smallest submission) and a bulk one of 4,000 seeded random submissions, sent in batches.
Values come from what validation lets through for each key (numbers for numeric rules,
whole years of birth) plus everything else JSON can hold for the choice and boolean rules:
null, missing, strings, numbers written as floats, lists, objects.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.stats.catalog import (
    BIRTH_YEAR,
    Catalog,
    Measured,
    measures_lateral,
    month_of,
    read_catalog,
)
from api.stats.keys import RecordKeys, sql_key
from schemas.stats import Indicator, Rule

pytestmark = pytest.mark.anyio

# The shipped catalog, and one indicator of each kind it does not use yet.
EXTRA = [
    Indicator(
        code="X_HH_SUM",
        name={"vi": "x", "en": "x"},
        unit="ratio",
        subject="household",
        min_age=None,
        rule=Rule(key="hh_smart_devices", op="sum"),
    ),
    Indicator(
        code="X_HH_EQ",
        name={"vi": "x", "en": "x"},
        unit="fraction",
        subject="household",
        min_age=None,
        rule=Rule(key="hh_broadband", op="eq", value="fibre"),
    ),
    Indicator(
        code="X_M_GTE",
        name={"vi": "x", "en": "x"},
        unit="fraction",
        subject="member",
        min_age=None,
        rule=Rule(key="cloud_accounts", op="gte", value=2),
    ),
    Indicator(
        code="X_M_IN",
        name={"vi": "x", "en": "x"},
        unit="fraction",
        subject="member",
        min_age=60,
        rule=Rule(key="vneid", op="in", value=["level1", "level2", "1"]),
    ),
    Indicator(
        code="X_M_SUM_ALL",
        name={"vi": "x", "en": "x"},
        unit="ratio",
        subject="member",
        min_age=None,
        rule=Rule(key="cloud_accounts", op="sum"),
    ),
]
INDICATORS = [
    msgspec.convert(
        {
            "code": entry.code,
            "name": entry.name,
            "unit": entry.unit,
            "subject": entry.subject,
            "minAge": entry.min_age,
            "rule": entry.rule,
        },
        Indicator,
    )
    for entry in read_catalog()
] + EXTRA
KEYS = RecordKeys(b"a test secret for the cell keys")
CATALOG = Catalog(INDICATORS, KEYS)
NUMERIC = {i.rule.key for i in INDICATORS if i.rule.op in ("gte", "sum")}
OTHER = {i.rule.key for i in INDICATORS} - NUMERIC

# Cases in, measures out: $1 case numbers, $2 and $3 the padded secret, then the submission.
SQL = f"""
    SELECT c.i, measure.code, measure.numerator, measure.denominator,
           measure.numerator_key, measure.denominator_key
    FROM unnest($1::int[], $4::uuid[], $5::jsonb[], $6::text[], $7::timestamptz[])
         AS c(i, household_id, answers, members, collected_at)
    CROSS JOIN LATERAL (
        SELECT c.household_id, {sql_key("c.household_id::text", "$2", "$3")} AS hk, c.answers,
               c.members::jsonb AS members, c.collected_at
    ) AS s
    {measures_lateral(INDICATORS)}
    ORDER BY c.i"""

Case = tuple[uuid.UUID, datetime, dict[str, Any], list[tuple[uuid.UUID, dict[str, Any]]]]


async def in_sql(db: asyncpg.Connection, cases: list[Case]) -> list[list[Measured]]:
    rows = await db.fetch(
        SQL,
        list(range(len(cases))),
        *KEYS.params,
        [household for household, _, _, _ in cases],
        [answers for _, _, answers, _ in cases],
        [
            msgspec.json.encode([{"memberId": str(m), "answers": a} for m, a in members]).decode()
            for _, _, _, members in cases
        ],
        [collected for _, collected, _, _ in cases],
    )
    found: list[list[Measured]] = [[] for _ in cases]
    for row in rows:
        found[row[0]].append(tuple(row[1:]))  # type: ignore[arg-type]
    return found


def in_python(case: Case) -> list[Measured]:
    return CATALOG.measure(*case)


# Values -------------------------------------------------------------------------------------

ANYTHING: list[Any] = [
    None, True, False, 0, 1, 2, -1, 3, 2.0, 0.5, 2.5, -2.5, 1e16, 1.5e-7, -0.0,
    "level2", "level1", "fibre", "other_fixed", "none", "1", "2", "true", "", "Fibre",
    [], ["fibre"], {}, {"a": 1},
]  # fmt: skip
NUMBERS: list[Any] = [None, 0, 1, 2, 3, 5, -1, 0.5, 1.5, 2.5, -0.5, -2.5, 7.25, 1e16, 1e-9]


def random_case(rng: random.Random) -> Case:
    def answers(keys: set[str], numeric: set[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for key in sorted(keys):
            if rng.random() < 0.15:
                continue  # not answered
            if key in numeric:
                found[key] = rng.choice(NUMBERS) if rng.random() < 0.7 else rng.randint(0, 40)
            else:
                found[key] = rng.choice(ANYTHING)
        return found

    collected = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(3 * 365 * 86400))
    members = []
    for _ in range(rng.choice([0, 1, 2, 3, 4, 6, 9])):
        member = answers(OTHER | NUMERIC, NUMERIC)
        if rng.random() < 0.9:
            # Around the age limits, in Vietnam's calendar year (New Year's Eve in UTC too).
            member[BIRTH_YEAR] = collected.year - rng.choice([0, 13, 14, 15, 16, 59, 60, 61, 90])
        members.append((uuid.uuid4(), member))
    return (uuid.uuid4(), collected, answers(OTHER | NUMERIC, NUMERIC), members)


async def test_python_and_sql_count_4_000_random_submissions_alike(
    db: asyncpg.Connection,
) -> None:
    rng = random.Random(15)
    cases = [random_case(rng) for _ in range(4_000)]
    for start in range(0, len(cases), 2_000):
        chunk = cases[start : start + 2_000]
        expected = await in_sql(db, chunk)
        for case, sql in zip(chunk, expected, strict=True):
            assert in_python(case) == sql, case


def _value(numeric: bool) -> st.SearchStrategy[Any]:
    numbers = st.none() | st.integers(-50, 50) | st.floats(-1e6, 1e6, allow_nan=False)
    if numeric:
        return numbers
    return (
        numbers
        | st.booleans()
        | st.sampled_from(ANYTHING)
        | st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=8)
    )


def _answers(keys: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={key: _value(key in NUMERIC) for key in keys})


MEMBER = st.tuples(
    st.uuids(),
    st.tuples(_answers(OTHER | NUMERIC), st.none() | st.integers(1900, 2030)).map(
        lambda pair: pair[0] if pair[1] is None else {**pair[0], BIRTH_YEAR: pair[1]}
    ),
)
CASE = st.tuples(
    st.uuids(),
    st.datetimes(datetime(2020, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    _answers(OTHER | NUMERIC),
    st.lists(MEMBER, max_size=6),
)


async def test_python_and_sql_count_alike_property(db: asyncpg.Connection) -> None:
    """Hypothesis drives the cases from a thread; each is counted by the test's database."""
    loop = asyncio.get_running_loop()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(CASE)
    def agree(case: Case) -> None:
        (sql,) = asyncio.run_coroutine_threadsafe(in_sql(db, [case]), loop).result()
        assert in_python(case) == sql

    await asyncio.to_thread(agree)


async def test_the_month_a_change_counts_in_is_vietnams(db: asyncpg.Connection) -> None:
    times = [
        datetime(2025, 1, 31, 16, 59, 59, tzinfo=UTC),
        datetime(2025, 1, 31, 17, 0, 0, tzinfo=UTC),  # midnight in Hà Nội: February
        datetime(2024, 12, 31, 23, 0, 0, tzinfo=UTC),
        datetime(2025, 6, 30, 12, 0, 0, tzinfo=UTC),
    ]
    months = await db.fetchval(
        """SELECT array_agg(date_trunc('month', t AT TIME ZONE 'Asia/Ho_Chi_Minh')::date
                            ORDER BY n)
           FROM unnest($1::timestamptz[]) WITH ORDINALITY AS u(t, n)""",
        times,
    )
    assert [month_of(t) for t in times] == months
