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
import uuid
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

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
        self.measure = measures_function(indicators, keys)


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


def _key(rule: Rule) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", rule.key):  # also checked by Rule
        raise ValueError(f"unsafe rule key {rule.key!r}")
    return rule.key


def _field(answers: str, rule: Rule, as_text: bool = True) -> str:
    return f"({answers}->{'>' if as_text else ''}'{_key(rule)}')"


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


# The same rules in Python, for the write path --------------------------------------------------
#
# Writers compute what a submission counts here, from the answers they just decoded, and
# append the result to the log; the database never evaluates a rule over jsonb on the write
# path. Each function mirrors a SQL expression above, including PostgreSQL's edge cases (a
# missing or null answer, ``->>`` text of numbers and booleans, numeric sums cast to bigint
# with rounding half away from zero): tests/test_catalog_python.py fuzzes one against the
# other.

Measured = tuple[str, int, int, int, int]  # measure, numerator, denominator, their key sums
Member = tuple[uuid.UUID | str, dict[str, Any]]  # member id, answers
MeasureFunction = Callable[[uuid.UUID, datetime, dict[str, Any], Sequence[Member]], list[Measured]]
ZONE: Final = ZoneInfo(TIME_ZONE)


class NotANumber(ValueError):
    """An answer a numeric rule reads is no number (PostgreSQL's cast would fail too)."""


def _text(value: object) -> str | None:
    """``answers->>'key'``: jsonb's text of a value (None for a missing or null one)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _numeric_text(_decimal(value))
    return msgspec.json.encode(value).decode()  # an array or object: never a choice code


def _decimal(value: float) -> Decimal:
    # jsonb keeps a number as written, and msgspec writes a float's shortest repr, as Python.
    return Decimal(repr(value))


def _numeric_text(value: Decimal) -> str:
    return format(value.copy_abs() if value.is_zero() else value, "f")  # numeric has no -0


def _number(value: object) -> int | Decimal | None:
    """``(answers->>'key')::numeric`` for the answers validation lets through."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NotANumber(f"not a number: {value!r}")
    return value if isinstance(value, int) else _decimal(value)


def _bigint(value: int | Decimal) -> int:
    """numeric::bigint rounds half away from zero."""
    if isinstance(value, int):
        return value
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _year(value: object) -> int | None:
    """``(… ->> 'birth_year')::int``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise NotANumber(f"not a year: {value!r}")
    return value


_ids_json = msgspec.json.Encoder()
_texts_of = msgspec.json.Decoder(list[str])


def _texts(ids: list[uuid.UUID | str]) -> list[str]:
    """``str()`` of each id (a record key's unit), by msgspec's encoder and decoder: uuid's own
    ``__str__`` is Python, and cost a fifth of the rules' time for a household of four."""
    return _texts_of.decode(_ids_json.encode(ids))


def _at_least(value: object, bound: int) -> bool:
    number = _number(value)
    return number is not None and number >= bound


def _python_test(answers: str, rule: Rule) -> str:
    """The Python twin of :func:`predicate` for the boolean ops, as source text."""
    field = f"{answers}.get({_key(rule)!r})"
    # Each helper is called only for a value of another type than the usual (a call per
    # member and indicator was most of the rules' own time).
    text = f"(_t if type(_t := {field}) is str else _text(_t))"
    match rule.op:
        case "true":
            return f"{field} is True"
        case "eq":
            return f"{text} == {_choice(rule.value)}"
        case "in":
            values = rule.value if isinstance(rule.value, list) else [rule.value]
            return f"{text} in ({''.join(_choice(v) + ', ' for v in values)})"
        case "gte":
            bound = int(str(rule.value))
            return f"(_g >= {bound} if type(_g := {field}) is int else _at_least(_g, {bound}))"
    raise ValueError(f"unknown rule op {rule.op!r}")


def _python_amount(answers: str, rule: Rule) -> str:
    """The Python twin of :func:`predicate` for ``sum``: the number, or 0."""
    field = f"{answers}.get({_key(rule)!r})"
    return f"(_v if type(_v := {field}) is int else (_number(_v) or 0))"


def measures_source(indicators: list[Indicator]) -> str:
    """The source of ``measure(household_id, collected_at, answers, members)``: what one
    submission counts, per indicator in catalog order (the rows of :func:`measures_lateral`,
    before any sign or month). Generated as one flat function, as the SQL is generated as
    text: one pass over the roster, each indicator's test inlined (a closure per indicator
    and member cost several times as much)."""
    lines = [
        "def measure(household_id, collected_at, answers, members):",
        "    units = _texts([household_id, *[member[0] for member in members]])",
        "    household = units[0]",
        "    hk = key(household)",
        "    prefix = household + ':'",
        "    year = collected_at.astimezone(ZONE).year",
    ]
    people = [(p, i) for p, i in enumerate(indicators) if i.subject == "member"]
    for position, _ in people:
        lines.append(f"    n{position} = nk{position} = d{position} = dk{position} = 0")
    if people:
        lines += [
            "    for index, (_, a) in enumerate(members, 1):",
            f"        born = _b if type(_b := a.get({BIRTH_YEAR!r})) is int else _year(_b)",
            "        age = None if born is None else year - born",
            "        rk = key(prefix + units[index])",
        ]
        for min_age in dict.fromkeys(i.min_age for _, i in people):
            indent = "        "
            if min_age is not None:
                lines.append(f"        if age is not None and age >= {int(min_age)}:")
                indent += "    "
            for position, indicator in people:
                if indicator.min_age != min_age:
                    continue
                lines.append(f"{indent}d{position} += 1")
                lines.append(f"{indent}dk{position} += rk")
                if indicator.rule.op == "sum":
                    lines.append(f"{indent}v = {_python_amount('a', indicator.rule)}")
                    lines.append(f"{indent}n{position} += v")
                    lines.append(f"{indent}nk{position} += rk * v")
                else:
                    lines.append(f"{indent}if {_python_test('a', indicator.rule)}:")
                    lines.append(f"{indent}    n{position} += 1")
                    lines.append(f"{indent}    nk{position} += rk")
    rows = []
    for position, indicator in enumerate(indicators):
        code = repr(indicator.code)
        if indicator.subject == "member":
            if indicator.rule.op == "sum":
                rows.append(
                    f"({code}, _bigint(n{position}), d{position}, _bigint(nk{position}),"
                    f" dk{position})"
                )
            else:
                rows.append(f"({code}, n{position}, d{position}, nk{position}, dk{position})")
        elif indicator.rule.op == "sum":
            lines.append(f"    v{position} = {_python_amount('answers', indicator.rule)}")
            rows.append(f"({code}, _bigint(v{position}), 1, _bigint(hk * v{position}), hk)")
        else:
            lines.append(f"    t{position} = {_python_test('answers', indicator.rule)}")
            rows.append(f"({code}, 1 if t{position} else 0, 1, hk if t{position} else 0, hk)")
    lines.append("    return [" + ", ".join(rows) + "]")
    return "\n".join(lines) + "\n"


def measures_function(indicators: list[Indicator], keys: RecordKeys) -> MeasureFunction:
    """:func:`measures_source`, compiled once per catalog."""
    namespace: dict[str, Any] = {
        "_text": _text,
        "_number": _number,
        "_bigint": _bigint,
        "_year": _year,
        "_at_least": _at_least,
        "_texts": _texts,
        "ZONE": ZONE,
        "key": keys.of,
    }
    # Every key and value in the source passed the same checks as in the SQL (_field,
    # _choice), and numbers are written by int(): nothing from a request reaches it.
    exec(compile(measures_source(indicators), "<indicator catalog>", "exec"), namespace)  # noqa: S102
    measure: MeasureFunction = namespace["measure"]
    return measure


def month_of(at: datetime) -> date:
    """``date_trunc('month', at AT TIME ZONE …)::date``: the month a change counts in."""
    return at.astimezone(ZONE).date().replace(day=1)


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
