"""The indicator catalog (data in the ``indicator`` table) and the SQL that counts it.

Each indicator's rule says what counts in its numerator, from the ``household_digital``
answers: a household indicator counts households, a member indicator counts (or, for
``sum``, adds up) members at least ``minAge`` years old in the year of collection. The same
generated SQL serves the incremental path (a few households per batch) and the rebuild (a
whole province), so the two can only differ in bookkeeping, which is what the tests check.

Counts are stored, rates derived after aggregation: a province's rate is the sum of its
wards' numerators over the sum of their denominators, never an average of ward rates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import asyncpg
import msgspec

from api.stats.keys import RecordKeys, sql_key
from schemas.stats import Indicator, Rule

COVERAGE: Final = "COVERAGE"  # surveyed households / registered households
BIRTH_YEAR: Final = "birth_year"  # the member question ages are derived from
TIME_ZONE: Final = "Asia/Ho_Chi_Minh"  # months and ages are counted in Vietnam time


class Catalog:
    """The indicators in display order, the SQL counting them (built once), and the record
    keys the counters carry (its statements take ``keys.params`` as $2 and $3)."""

    def __init__(self, indicators: list[Indicator], keys: RecordKeys) -> None:
        self.indicators = indicators
        self.keys = keys
        self.by_code = {indicator.code: indicator for indicator in indicators}
        self.codes = [indicator.code for indicator in indicators]
        self.history_by_households = history_sql(indicators, "h.id = ANY($1::uuid[])")
        self.history_by_province = history_sql(indicators, "h.province_id = $1")
        self.accepted = accepted_sql(indicators)


async def load_catalog(conn: asyncpg.Connection, keys: RecordKeys) -> Catalog:
    rows = await conn.fetch(
        "SELECT code, name, unit, subject, min_age, rule FROM indicator ORDER BY position"
    )
    return Catalog([msgspec.convert(row, Indicator, from_attributes=True) for row in rows], keys)


def _choice(value: object) -> str:
    text = str(value)
    if not re.fullmatch(r"[a-z0-9_]{1,40}", text):  # also checked by Rule; never trust twice
        raise ValueError(f"unsafe rule value {text!r}")
    return f"'{text}'"


def _field(answers: str, rule: Rule, as_text: bool = True) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", rule.key):
        raise ValueError(f"unsafe rule key {rule.key!r}")
    return f"({answers}->{'>' if as_text else ''}'{rule.key}')"


def predicate(rule: Rule, answers: str) -> str:
    """A SQL boolean (or, for ``sum``, a number) over the jsonb answers in ``answers``."""
    match rule.op:
        case "true":
            return f"({_field(answers, rule, as_text=False)} = 'true'::jsonb)"
        case "eq":
            return f"({_field(answers, rule)} = {_choice(rule.value)})"
        case "in":
            values = rule.value if isinstance(rule.value, list) else [rule.value]
            return f"({_field(answers, rule)} IN ({', '.join(_choice(v) for v in values)}))"
        case "gte":
            return f"(({_field(answers, rule)})::numeric >= {int(str(rule.value))})"
        case "sum":
            return f"coalesce(({_field(answers, rule)})::numeric, 0)"
    raise ValueError(f"unknown rule op {rule.op!r}")


# Record keys in the generated SQL: the padded cell-key secret is $2 and $3 (api/stats/keys.py).
HOUSEHOLD_KEY: Final = sql_key("h.id::text", "$2", "$3")
PERSON_KEY: Final = sql_key("s.household_id::text || ':' || (member.item->>'memberId')", "$2", "$3")


def measures_lateral(indicators: list[Indicator]) -> str:
    """The member aggregates of one submission, and one (measure, numerator, denominator,
    numerator key sum, denominator key sum) row per indicator built from them. ``s`` has the
    submission's ``household_id``, ``hk`` (the household's record key), answers and members."""
    aggregates: list[str] = []
    rows: list[str] = []
    for position, indicator in enumerate(indicators):
        test = predicate(indicator.rule, "a" if indicator.subject == "member" else "s.answers")
        if indicator.subject == "household":
            if indicator.rule.op == "sum":
                numerator, key = f"{test}", f"s.hk * {test}"
            else:
                numerator = f"CASE WHEN {test} THEN 1 ELSE 0 END"
                key = f"CASE WHEN {test} THEN s.hk ELSE 0 END"
            rows.append(
                f"('{indicator.code}', ({numerator})::bigint, 1::bigint,"
                f" ({key})::bigint, s.hk::bigint)"
            )
            continue
        eligible = "true" if indicator.min_age is None else f"age >= {int(indicator.min_age)}"
        if indicator.rule.op == "sum":
            # A sum's key weighs each person's key by their value: any change draws new noise.
            aggregates.append(f"coalesce(sum({test}) FILTER (WHERE {eligible}), 0) AS n{position}")
            aggregates.append(
                f"coalesce(sum(rk * {test}) FILTER (WHERE {eligible}), 0) AS nk{position}"
            )
        else:
            aggregates.append(f"count(*) FILTER (WHERE {eligible} AND {test}) AS n{position}")
            aggregates.append(
                f"coalesce(sum(rk) FILTER (WHERE {eligible} AND {test}), 0) AS nk{position}"
            )
        aggregates.append(f"count(*) FILTER (WHERE {eligible}) AS d{position}")
        aggregates.append(f"coalesce(sum(rk) FILTER (WHERE {eligible}), 0) AS dk{position}")
        rows.append(
            f"('{indicator.code}', m.n{position}::bigint, m.d{position}::bigint,"
            f" m.nk{position}::bigint, m.dk{position}::bigint)"
        )
    lateral = f"""
        CROSS JOIN LATERAL (
            SELECT {", ".join(aggregates) if aggregates else "1 AS unused"}
            FROM jsonb_array_elements(s.members) AS member(item)
            CROSS JOIN LATERAL (
                SELECT member.item->'answers' AS a,
                       extract(year FROM s.collected_at AT TIME ZONE '{TIME_ZONE}')::int
                         - (member.item->'answers'->>'{BIRTH_YEAR}')::int AS age,
                       {PERSON_KEY} AS rk
            ) AS person
        ) AS m
        CROSS JOIN LATERAL (VALUES {", ".join(rows)})
            AS measure(code, numerator, denominator, numerator_key, denominator_key)"""
    return lateral


def history_sql(indicators: list[Indicator], households: str) -> str:
    """Each household's whole contribution to the counters, as monthly deltas per ward.

    A submission counts from its ``counted_at`` until the one that superseded it took over;
    a household is registered from its creation (or its first visit, if that was earlier)
    and surveyed from its first visit. ``households`` is a fixed filter on ``household h``
    ($1); $2 and $3 are the padded cell-key secret.
    """
    lateral = measures_lateral(indicators)
    return f"""
    WITH h AS (
        SELECT h.id, h.ward_id, h.province_id, h.created_at, {HOUSEHOLD_KEY} AS hk
        FROM household h WHERE {households}
    ), s AS (
        SELECT s.household_id, h.hk, s.counted_at, s.collected_at, s.answers, s.members,
               next.counted_at AS ended_at
        FROM h
        JOIN submission s ON s.household_id = h.id
        LEFT JOIN submission next ON next.household_id = s.household_id AND next.supersedes = s.id
    ), counted AS (
        SELECT s.household_id, s.counted_at, s.ended_at, measure.*
        FROM s {lateral}
    ), first AS (
        SELECT household_id, min(counted_at) AS at FROM s GROUP BY household_id
    ), event AS (
        SELECT household_id, counted_at AS at, code, numerator, denominator,
               numerator_key, denominator_key
        FROM counted
        UNION ALL
        SELECT household_id, ended_at, code, -numerator, -denominator,
               -numerator_key, -denominator_key
        FROM counted WHERE ended_at IS NOT NULL
        UNION ALL
        SELECT first.household_id, first.at, '{COVERAGE}', 1, 0, h.hk, 0
        FROM first JOIN h ON h.id = first.household_id
        UNION ALL
        SELECT h.id, least(h.created_at, first.at), '{COVERAGE}', 0, 1, 0, h.hk
        FROM h LEFT JOIN first ON first.household_id = h.id
    )
    SELECT h.ward_id, h.province_id,
           date_trunc('month', event.at AT TIME ZONE '{TIME_ZONE}')::date AS month,
           event.code AS measure,
           sum(event.numerator)::bigint AS numerator,
           sum(event.denominator)::bigint AS denominator,
           sum(event.numerator_key)::bigint AS numerator_key,
           sum(event.denominator_key)::bigint AS denominator_key
    FROM event JOIN h ON h.id = event.household_id
    GROUP BY 1, 2, 3, 4
    HAVING sum(event.numerator) <> 0 OR sum(event.denominator) <> 0
        OR sum(event.numerator_key) <> 0 OR sum(event.denominator_key) <> 0"""


def accepted_sql(indicators: list[Indicator]) -> str:
    """The change newly accepted submissions (ids in $1, already stored) make to the
    counters, as monthly deltas per ward: each counts from its ``counted_at`` and ends the
    state it supersedes there; a first visit makes the household surveyed (and registered,
    if that is earlier than its creation). The rebuild computes the same from scratch
    (:func:`history_sql`), which is what the tests compare. $2 and $3: the padded secret."""
    lateral = measures_lateral(indicators)
    # Wards come with the new rows (one index lookup each), never from a join of the
    # deltas with all households: a generic plan would hash the whole table.
    return f"""
    WITH new AS (
        SELECT n.id, n.household_id, n.supersedes, n.counted_at, h.created_at,
               h.ward_id, h.province_id, {HOUSEHOLD_KEY} AS hk
        FROM submission n JOIN household h ON h.id = n.household_id
        WHERE n.id = ANY($1::uuid[])
    ), s AS (
        SELECT new.ward_id, new.province_id, new.counted_at AS at, 1 AS sign,
               new.household_id, new.hk, s.answers, s.members, s.collected_at
        FROM new JOIN submission s ON s.id = new.id
        UNION ALL
        SELECT new.ward_id, new.province_id, new.counted_at, -1,
               new.household_id, new.hk, s.answers, s.members, s.collected_at
        FROM new JOIN submission s ON s.id = new.supersedes
    ), event AS (
        SELECT s.ward_id, s.province_id, s.at, measure.code,
               s.sign * measure.numerator AS numerator,
               s.sign * measure.denominator AS denominator,
               s.sign * measure.numerator_key AS numerator_key,
               s.sign * measure.denominator_key AS denominator_key
        FROM s {lateral}
        UNION ALL
        SELECT ward_id, province_id, counted_at, '{COVERAGE}', 1, 0, hk, 0
        FROM new WHERE supersedes IS NULL
        UNION ALL
        SELECT ward_id, province_id, created_at, '{COVERAGE}', 0, -1, 0, -hk
        FROM new WHERE supersedes IS NULL AND counted_at < created_at
        UNION ALL
        SELECT ward_id, province_id, counted_at, '{COVERAGE}', 0, 1, 0, hk
        FROM new WHERE supersedes IS NULL AND counted_at < created_at
    )
    SELECT ward_id, province_id,
           date_trunc('month', at AT TIME ZONE '{TIME_ZONE}')::date AS month,
           code AS measure,
           sum(numerator)::bigint AS numerator,
           sum(denominator)::bigint AS denominator,
           sum(numerator_key)::bigint AS numerator_key,
           sum(denominator_key)::bigint AS denominator_key
    FROM event
    GROUP BY 1, 2, 3, 4
    HAVING sum(numerator) <> 0 OR sum(denominator) <> 0
        OR sum(numerator_key) <> 0 OR sum(denominator_key) <> 0"""


class CatalogCache:
    """The catalog only changes with a migration, so each process reads it once."""

    def __init__(self, keys: RecordKeys) -> None:
        self.keys = keys
        self._catalog: Catalog | None = None

    async def get(self, conn: asyncpg.Connection) -> Catalog:
        if self._catalog is None:
            self._catalog = await load_catalog(conn, self.keys)
        return self._catalog


# The catalog as the project ships it. Migration 0004 created the table from it; later
# changes reach a database through sync_catalog (run by `congdongso migrate`).
CATALOG_FILE: Final = (
    Path(__file__).resolve().parents[2] / "migrations" / "data" / "indicators.json"
)
DEFAULT_TARGET_YEAR: Final = 2025


class CatalogEntry(msgspec.Struct, rename="camel", frozen=True):
    """One indicator of ``indicators.json`` (its national default ``target`` included)."""

    code: str
    name: dict[str, str]
    unit: str
    subject: str
    min_age: int | None
    rule: dict[str, object]
    target: float
    source: str | None = None


class CatalogSync(msgspec.Struct, frozen=True):
    added: list[str]
    changed: list[str]  # names, units, sources or order
    recounted: list[str]  # rules, subjects or ages: their counters must be rebuilt
    missing: list[str]  # in the database, no longer in the file (kept: targets refer to them)


def read_catalog(path: Path = CATALOG_FILE) -> list[CatalogEntry]:
    entries = msgspec.json.decode(path.read_bytes(), type=list[CatalogEntry])
    for entry in entries:  # every rule must compile, whatever the file says
        predicate(msgspec.convert(entry.rule, Rule), "answers")
    return entries


async def sync_catalog(conn: asyncpg.Connection, entries: list[CatalogEntry]) -> CatalogSync:
    """Bring the ``indicator`` table in line with the catalog (:func:`read_catalog`), in one
    transaction.

    New indicators are added with their national default target; existing ones take the
    file's names, unit, subject, age, rule, source and order. Nothing is deleted. Changes to
    what an indicator counts, or to its unit (which changes how wards add up to their
    province), are reported in ``recounted``: the caller rebuilds the counters (``congdongso
    migrate`` does; running workers read the catalog once, so restart them).
    """
    async with conn.transaction():
        rows = {
            row["code"]: row
            for row in await conn.fetch(
                "SELECT code, position, name, unit, subject, min_age, rule, source FROM indicator"
            )
        }
        added, changed, recounted = [], [], []
        # Positions are unique: move every row out of the way before renumbering.
        await conn.execute("UPDATE indicator SET position = position + 10000")
        for position, entry in enumerate(entries, start=1):
            row = rows.get(entry.code)
            # A unit changes how a ward adds to its province's kept sums (api/stats/sums.py):
            # counted again, as a rule is.
            counts = (entry.subject, entry.min_age, entry.rule, entry.unit)
            shown = (position, entry.name, entry.source)
            if row is None:
                added.append(entry.code)
            elif (row["subject"], row["min_age"], row["rule"], row["unit"]) != counts:
                recounted.append(entry.code)
            elif (row["position"], row["name"], row["source"]) != shown:
                changed.append(entry.code)
            await conn.execute(
                """INSERT INTO indicator
                       (code, position, name, unit, subject, min_age, rule, source)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                   ON CONFLICT (code) DO UPDATE SET position = $2, name = $3, unit = $4,
                       subject = $5, min_age = $6, rule = $7, source = $8""",
                entry.code,
                position,
                entry.name,
                entry.unit,
                entry.subject,
                entry.min_age,
                entry.rule,
                entry.source,
            )
            if row is None:
                await conn.execute(
                    """INSERT INTO target (area_id, indicator, year, value)
                       VALUES (NULL, $1, $2, $3::text::numeric) ON CONFLICT DO NOTHING""",
                    entry.code,
                    DEFAULT_TARGET_YEAR,
                    str(entry.target),
                )
        missing = sorted(set(rows) - {entry.code for entry in entries})
        # Indicators no longer in the file keep their place after the others.
        for offset, code in enumerate(missing, start=len(entries) + 1):
            await conn.execute("UPDATE indicator SET position = $2 WHERE code = $1", code, offset)
    return CatalogSync(added=added, changed=changed, recounted=recounted, missing=missing)
