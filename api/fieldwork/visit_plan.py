"""The visit plan: a ward's households ordered by how much a visit would move the ward
towards its lagging targets.

Lagging indicators are the ward's exact current figures (its team and officials see their
own ward exactly) that are below their target, ordered by gap (target − value, as on the
card), the furthest behind first. Households come in four groups, and within a group:

1. ``never_surveyed``: registered, never surveyed; the longest registered first;
2. ``stale``: the current survey is older than the ward's ``stale_after_months`` (default
   6); the longest ago first;
3. ``help_wanted``: members asked for help (``help_wanted``) with a lagging indicator and
   are not yet counted in it; the furthest-behind indicator first, then the most members,
   then the longest ago surveyed;
4. ``misses_indicator``: the current answers are not counted in a lagging indicator's
   numerator (a household indicator, or at least one member of the indicator's age who is
   not counted); ordered like group 3.

Households surveyed within the cut-off that neither ask for help with nor miss a lagging
indicator are not in the plan: a visit would not move a lagging target. When the plan is
for a team member (``member``), the households of their hamlets come first, each part in
the order above. Accounts and teams carry no hamlet, so a member's hamlets are the hamlets
of the households they registered or whose current survey they collected.

A row holds what the caller already reads through ``/households`` and the pull (id, label,
hamlet, last visit) plus counts and reasons derived from the current answers; never the
answers themselves.

A plan reads facts, not answers: per submission, how many members of each indicator's age
are not counted in it and how many of those asked for help with it (``visit_fact``,
migration 0010), so that ordering 5,000 households reads a few numbers each. Submissions
never change, so their facts are computed once, when a plan finds them missing (a ward's
first plan computes all of its households'); they carry a hash of the SQL that computed
them, so facts of an older indicator catalog are recomputed.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime
from functools import cache
from typing import Final, NamedTuple

import asyncpg

from api.auth import Principal
from api.i18n import N_, translate
from api.pagination import encode_cursor
from api.stats import counters, disclosure
from api.stats.cards import indicator_value, nearest_target
from api.stats.catalog import BIRTH_YEAR, TIME_ZONE, Catalog, predicate
from api.stats.cells import EMPTY
from api.stats.periods import today
from schemas.base import Page
from schemas.fieldwork import STALE_AFTER_DEFAULT, VisitPlanItem, VisitReason
from schemas.stats import Indicator

# The help_wanted choices of household_digital and the indicator a visit answering each
# moves: VNeID → level-2 e-ID, signature → digital signature, cloud → cloud accounts,
# epay → e-payment, eps → online public services, scams → basic digital skills.
HELP_INDICATORS: Final = {
    "vneid": "ADULT_EID",
    "signature": "ADULT_DIGSIG",
    "cloud": "ADULT_CLOUD",
    "epay": "ADULT_EPAY",
    "eps": "ADULT_EPS",
    "scams": "DIGSKILL",
}
HELP_KEY: Final = "help_wanted"
PULL_ROWS: Final = 200  # the first page of a team member's plan in their pull

NEVER_SURVEYED, STALE, HELP_WANTED, MISSES = 1, 2, 3, 4
REASONS: Final[dict[int, VisitReason]] = {
    NEVER_SURVEYED: "never_surveyed",
    STALE: "stale",
    HELP_WANTED: "help_wanted",
    MISSES: "misses_indicator",
}

# Reason texts ----------------------------------------------------------------------------------

NEVER_TEXT = N_("Never surveyed.")
STALE_ONE_TEXT = N_("Last surveyed a month ago.")
STALE_TEXT = N_("Last surveyed %(months)s months ago.")
HELP_FURTHEST_TEXT = N_(
    "Members asking for help with %(topic)s, the indicator furthest from target: %(count)s."
)
HELP_BEHIND_TEXT = N_(
    "Members asking for help with %(topic)s, an indicator behind target: %(count)s."
)
HELP_TOPICS: Final = {
    "vneid": N_("level-2 VNeID"),
    "signature": N_("digital signatures"),
    "cloud": N_("cloud accounts"),
    "epay": N_("e-payment"),
    "eps": N_("online public services"),
    "scams": N_("avoiding online scams"),
}
# Not counted in an indicator: (nobody of the indicator's age is, some are not: counts).
MEMBER_MISSES: Final = {
    "ADULT_SMARTPHONE": (
        N_("No adult in the household owns a smartphone."),
        N_("Adults without a smartphone: %(count)s of %(eligible)s."),
    ),
    "ADULT_EID": (
        N_("Nobody aged 14 or over in the household has level-2 VNeID yet."),
        N_("Members aged 14 or over without level-2 VNeID: %(count)s of %(eligible)s."),
    ),
    "ADULT_CLOUD": (
        N_("No adult in the household has a cloud account."),
        N_("Adults without a cloud account: %(count)s of %(eligible)s."),
    ),
    "ADULT_DIGSIG": (
        N_("No adult in the household has a digital signature."),
        N_("Adults without a digital signature: %(count)s of %(eligible)s."),
    ),
    "ADULT_EPAY": (
        N_("No adult in the household has an e-payment account."),
        N_("Adults without an e-payment account: %(count)s of %(eligible)s."),
    ),
    "ADULT_EPS": (
        N_("No adult in the household uses online public services."),
        N_("Adults not using online public services (12 months): %(count)s of %(eligible)s."),
    ),
    "DIGSKILL": (
        N_("No adult in the household has had basic digital-skills training."),
        N_("Adults without basic digital-skills training: %(count)s of %(eligible)s."),
    ),
}
HOUSEHOLD_MISSES: Final = {
    "HH_SMART_DEVICE": N_("The household has no smart device."),
    "HH_BROADBAND": N_("The household has no fixed broadband."),
}
# An indicator added to the catalog later, before it has texts of its own.
MEMBER_MISSES_OTHER = N_("Members not counted in “%(indicator)s”: %(count)s of %(eligible)s.")
HOUSEHOLD_MISSES_OTHER = N_("The household is not counted in “%(indicator)s”.")


# Lagging indicators ------------------------------------------------------------------------


class Lagging(NamedTuple):
    code: str
    gap: float


async def lagging(
    conn: asyncpg.Connection, catalog: Catalog, ward_id: int, province_id: int
) -> list[Lagging]:
    """The ward's indicators behind their target, furthest behind first (catalog order on
    a tie): its exact counters today against the nearest targets, as on its own card."""
    chain = [ward_id, province_id, counters.NATION]
    cells, targets = await counters.current_with_targets(conn, [ward_id], chain, today().year)
    own = cells.get(ward_id, {})
    found: list[tuple[float, int, str]] = []
    for position, indicator in enumerate(catalog.indicators):
        target = nearest_target(targets, chain, indicator.code)
        shown = disclosure.exact(own.get(indicator.code, EMPTY))
        value = indicator_value(indicator, shown, target, "en")
        if value.gap is not None and value.gap > 0:
            found.append((-value.gap, position, indicator.code))
    return [Lagging(code, -gap) for gap, _, code in sorted(found)]


# The plan's SQL --------------------------------------------------------------------------------


def _counts(indicators: list[Indicator]) -> str:
    """The facts of one submission ``s``: an array of 3 × n counts, n the indicators in
    catalog order: members of the indicator's age not counted in its numerator (for a
    household indicator, 1 or 0), then members of its age (1), then those of the first who
    asked for help with it (``help_wanted``; 0 for an indicator no help choice maps to).
    Counts only: the answers stay in the database. Each member's tests are computed once
    (``OFFSET 0`` keeps PostgreSQL from copying them into every count)."""
    topics = {code: topic for topic, code in HELP_INDICATORS.items()}
    tests, miss, eligible, helped = [], [], [], []
    for position, indicator in enumerate(indicators):
        test = predicate(indicator.rule, "s.answers" if indicator.subject == "household" else "a")
        counted = f"coalesce(({test}) > 0, false)" if indicator.rule.op == "sum" else test
        if indicator.subject == "household":
            miss.append(f"CASE WHEN coalesce({counted}, false) THEN 0 ELSE 1 END")
            eligible.append("1")
            helped.append("0")
            continue
        of_age = "true" if indicator.min_age is None else f"age >= {int(indicator.min_age)}"
        tests.append(f"coalesce({of_age}, false) AS e{position}")
        tests.append(f"coalesce({of_age}, false) AND NOT coalesce({counted}, false) AS m{position}")
        miss.append(f"count(*) FILTER (WHERE m{position})")
        eligible.append(f"count(*) FILTER (WHERE e{position})")
        topic = topics.get(indicator.code)
        if topic is None:
            helped.append("0")
            continue
        if not re.fullmatch(r"[a-z]+", topic):
            raise ValueError(f"unsafe help topic {topic!r}")
        tests.append(f"coalesce(a->'{HELP_KEY}' @> '[\"{topic}\"]'::jsonb, false) AS w{position}")
        helped.append(f"count(*) FILTER (WHERE m{position} AND w{position})")
    return f"""
        SELECT ARRAY[{", ".join(miss + eligible + helped)}]::smallint[] AS counts
        FROM (
            SELECT {", ".join(tests) if tests else "true AS unused"}
            FROM jsonb_array_elements(s.members) AS member(item)
            CROSS JOIN LATERAL (
                SELECT member.item->'answers' AS a,
                       extract(year FROM s.collected_at AT TIME ZONE '{TIME_ZONE}')::int
                         - (member.item->'answers'->>'{BIRTH_YEAR}')::int AS age
            ) AS person
            OFFSET 0
        ) AS tested"""


class PlanStatements(NamedTuple):
    key: int  # which rules the facts follow: a hash of the SQL computing them
    fill: str
    plan: str


@cache
def statements(catalog: Catalog) -> PlanStatements:
    """The two statements of a plan, built once per catalog.

    ``fill``: the facts of ward $1's current submissions that have none for rules $2 (only
    new submissions, once the ward has had a plan). ``plan``: the plan of ward $1 for the
    rules $2 and member $3 (or NULL), with the lagging indicators' positions (1-based,
    catalog order) furthest behind first in $4 and their bits in $12, after the cursor
    $5–$10, $11 rows; each row also says how many surveyed households have no facts yet
    (``unfilled``). The sort key, (other hamlet, group, lagging rank, −members, time, id),
    is also the cursor.
    """
    n = len(catalog.indicators)
    counts = _counts(catalog.indicators)
    key = int.from_bytes(hashlib.sha256(counts.encode()).digest()[:8], "big", signed=True)
    if n > 62:
        raise ValueError("the plan's masks hold at most 62 indicators")
    # Bit i − 1 of ``missing`` / ``asking``: indicator i has members not counted / asking.
    masks = ", ".join(
        f"coalesce(sum(1::bigint << (i - 1)) FILTER (WHERE facts.counts[{offset} + i] > 0), 0)"
        for offset in (0, 2 * n)
    )
    fill = f"""
    INSERT INTO visit_fact AS v (submission_id, ward_id, catalog_key, collected_at, submitted_by,
                                 counts, missing, asking)
    SELECT s.id, h.ward_id, $2, s.collected_at, s.submitted_by, facts.counts, masks.*
    FROM household h
    JOIN submission s ON s.id = h.current_submission_id
    CROSS JOIN LATERAL ({counts}) AS facts
    CROSS JOIN LATERAL (SELECT {masks} FROM generate_series(1, {n}) AS i) AS masks
    WHERE h.ward_id = $1 AND h.current_submission_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM visit_fact f
                      WHERE f.submission_id = h.current_submission_id AND f.catalog_key = $2
                        AND f.ward_id = $1)
    ORDER BY s.id  -- two plans filling at once take the same rows in the same order
    ON CONFLICT (submission_id) DO UPDATE
    SET catalog_key = excluded.catalog_key, counts = excluded.counts,
        missing = excluded.missing, asking = excluded.asking
    WHERE v.catalog_key <> excluded.catalog_key"""

    def first(mask: str) -> str:
        """The rank of the furthest-behind lagging indicator whose bit is set in ``mask``
        (NULL if none); $12 holds the lagging indicators' bits, furthest behind first."""
        tests = " ".join(
            f"WHEN v.{mask} & ($12::bigint[])[{rank}] <> 0 THEN {rank}" for rank in range(1, n + 1)
        )
        return f"CASE {tests} END"

    # ``hh``: one row per household with its sort key, computed once (MATERIALIZED: an
    # inlined CTE is copied into every expression that uses it; OFFSET 0 keeps ``wanted``
    # and ``missed`` from being copied into the expressions built on them). Labels, names
    # and counts are read for the rows of the page only.
    plan = f"""
    WITH params AS MATERIALIZED (
        SELECT (now() AT TIME ZONE '{TIME_ZONE}' - make_interval(months => coalesce(
                   (SELECT stale_after_months FROM ward_setting WHERE ward_id = $1),
                   {STALE_AFTER_DEFAULT}))) AT TIME ZONE '{TIME_ZONE}' AS cutoff
    ), hh AS MATERIALIZED (
        SELECT id, hamlet_id, by_member,
               -- a surveyed household whose facts are not there yet (pushed since the
               -- fill) is left out; the caller fills and reads again
               NOT never AND counts IS NULL AS unfilled,
               CASE WHEN never THEN {NEVER_SURVEYED}
                    WHEN stale THEN {STALE}
                    WHEN wanted IS NOT NULL THEN {HELP_WANTED}
                    WHEN missed IS NOT NULL THEN {MISSES} END AS tier,
               CASE WHEN never OR stale THEN 0 ELSE coalesce(wanted, missed) END AS rank,
               CASE WHEN never OR stale THEN 0
                    WHEN wanted IS NOT NULL THEN -counts[{2 * n} + ($4::int[])[wanted]]
                    ELSE -coalesce(counts[($4::int[])[missed]], 0) END AS neg,
               at
        FROM (
            SELECT h.id, h.hamlet_id, h.current_submission_id IS NULL AS never,
                   v.collected_at < params.cutoff AS stale, v.counts,
                   {first("asking")} AS wanted,
                   {first("missing")} AS missed,
                   coalesce(v.collected_at, h.created_at) AS at,
                   h.created_by = $3 OR v.submitted_by = $3 AS by_member
            FROM params CROSS JOIN household h
            LEFT JOIN visit_fact v
                   ON v.submission_id = h.current_submission_id AND v.catalog_key = $2
                  AND v.ward_id = $1
            WHERE h.ward_id = $1
            OFFSET 0
        ) AS facts
    ), mine AS MATERIALIZED (
        -- the member's hamlets: where they registered or last surveyed a household
        SELECT ARRAY(SELECT DISTINCT hamlet_id FROM hh
                     WHERE by_member AND hamlet_id IS NOT NULL) AS hamlets
    ), planned AS (
        SELECT hh.*, CASE WHEN hh.hamlet_id = ANY (mine.hamlets) THEN 0 ELSE 1 END AS grp
        FROM hh CROSS JOIN mine
        WHERE hh.tier IS NOT NULL
    )
    SELECT p.id, h.label, p.hamlet_id, hamlet.name AS hamlet_name, v.collected_at,
           p.grp = 0 AS own, p.grp, p.tier, p.rank, p.neg, p.at,
           CASE WHEN p.tier IN ({HELP_WANTED}, {MISSES}) THEN ($4::int[])[p.rank] END
             AS position,
           CASE WHEN p.tier = {MISSES} THEN v.counts[{n} + ($4::int[])[p.rank]] END
             AS eligible,
           CASE WHEN p.tier = {STALE} THEN (
               SELECT (extract(year FROM age) * 12 + extract(month FROM age))::int
               FROM age(now() AT TIME ZONE '{TIME_ZONE}',
                        v.collected_at AT TIME ZONE '{TIME_ZONE}') AS age
           ) END AS months,
           (SELECT count(*) FROM hh WHERE unfilled) AS unfilled
    FROM (
        SELECT * FROM planned
        WHERE $5::int IS NULL OR (grp, tier, rank, neg, at, id)
                                 > ($5, $6::int, $7::int, $8::int, $9::timestamptz, $10::uuid)
        ORDER BY grp, tier, rank, neg, at, id
        LIMIT $11
    ) AS p
    JOIN household h ON h.id = p.id
    LEFT JOIN visit_fact v
           ON v.submission_id = h.current_submission_id AND v.catalog_key = $2
    LEFT JOIN hamlet ON hamlet.id = p.hamlet_id
    ORDER BY p.grp, p.tier, p.rank, p.neg, p.at, p.id"""
    return PlanStatements(key, fill, plan)


class PlanCursor(NamedTuple):
    """The sort key of the last row shown (see :func:`statements`)."""

    grp: int
    tier: int
    rank: int
    neg: int
    at: datetime
    id: uuid.UUID


def _reason(row: asyncpg.Record, catalog: Catalog, language: str) -> tuple[str, str | None]:
    """The row's reason text and the indicator it is about."""
    tier = row["tier"]
    if tier == NEVER_SURVEYED:
        return translate(language, NEVER_TEXT), None
    if tier == STALE:
        months = row["months"]
        if months == 1:
            return translate(language, STALE_ONE_TEXT), None
        return translate(language, STALE_TEXT, {"months": months}), None
    indicator = catalog.indicators[row["position"] - 1]
    count = -row["neg"]
    if tier == HELP_WANTED:
        topic = next(t for t, code in HELP_INDICATORS.items() if code == indicator.code)
        text = HELP_FURTHEST_TEXT if row["rank"] == 1 else HELP_BEHIND_TEXT
        params: dict[str, object] = {
            "topic": translate(language, HELP_TOPICS[topic]),
            "count": count,
        }
        return translate(language, text, params), indicator.code
    name = getattr(indicator.name, language)
    if indicator.subject == "household":
        message = HOUSEHOLD_MISSES.get(indicator.code, HOUSEHOLD_MISSES_OTHER)
        return translate(language, message, {"indicator": name}), indicator.code
    eligible = row["eligible"]
    if indicator.code not in MEMBER_MISSES:
        params = {"indicator": name, "count": count, "eligible": eligible}
        return translate(language, MEMBER_MISSES_OTHER, params), indicator.code
    nobody, some = MEMBER_MISSES[indicator.code]
    if count == eligible:
        return translate(language, nobody), indicator.code
    return translate(language, some, {"count": count, "eligible": eligible}), indicator.code


async def visit_plan(
    conn: asyncpg.Connection,
    catalog: Catalog,
    *,
    ward_id: int,
    province_id: int,
    member: uuid.UUID | None,
    language: str,
    after: PlanCursor | None,
    limit: int,
) -> Page[VisitPlanItem]:
    """A page of the ward's visit plan (see the module's docstring), in ``language``."""
    sql = statements(catalog)
    behind = await lagging(conn, catalog, ward_id, province_id)
    positions = {code: position for position, code in enumerate(catalog.codes, start=1)}
    lagging_positions = [positions[item.code] for item in behind]
    args = (
        ward_id,
        sql.key,
        member,
        lagging_positions,
        *(after if after is not None else (None,) * 6),
        limit + 1,
        [1 << (position - 1) for position in lagging_positions],
    )
    rows = await conn.fetch(sql.plan, *args)
    # Surveys without facts yet (new since the ward's last plan, or its first plan): add
    # them and read again.
    unfilled = not rows or rows[0]["unfilled"] > 0
    if unfilled and await conn.execute(sql.fill, ward_id, sql.key) != "INSERT 0 0":
        rows = await conn.fetch(sql.plan, *args)
    items = []
    for row in rows[:limit]:
        text, indicator = _reason(row, catalog, language)
        tier = row["tier"]
        counted = tier in (HELP_WANTED, MISSES) and (
            indicator is None or catalog.by_code[indicator].subject == "member"
        )
        items.append(
            VisitPlanItem(
                household_id=row["id"],
                label=row["label"],
                hamlet_id=row["hamlet_id"],
                hamlet_name=row["hamlet_name"],
                last_visit_at=row["collected_at"],
                reason=REASONS[tier],
                reason_text=text,
                indicator=indicator,
                members=-row["neg"] if counted else None,
                own_hamlet=row["own"],
            )
        )
    more = len(rows) > limit
    last = rows[limit - 1] if more else None
    return Page(
        items=items,
        next_cursor=(
            encode_cursor(PlanCursor(*(last[k] for k in PlanCursor._fields)))
            if last is not None
            else None
        ),
    )


async def pull_plan(
    conn: asyncpg.Connection, catalog: Catalog, caller: Principal, language: str
) -> Page[VisitPlanItem] | None:
    """The first page of a team member's own plan, for their pull (others: None)."""
    if caller.role != "team_member" or caller.area_id is None or caller.province_id is None:
        return None
    return await visit_plan(
        conn,
        catalog,
        ward_id=caller.area_id,
        province_id=caller.province_id,
        member=caller.user_id,
        language=language,
        after=None,
        limit=PULL_ROWS,
    )
