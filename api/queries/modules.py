"""Learning modules and their immutable versions, attempts, progress and ward counters."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from schemas.modules import (
    Audience,
    ModuleDefinition,
)

# Modules ---------------------------------------------------------------------------------------


class VersionRecord(msgspec.Struct, frozen=True, kw_only=True):
    module_id: uuid.UUID
    code: str
    version: int
    published_at: datetime
    definition: ModuleDefinition


_VERSION = """SELECT v.module_id, m.code, v.version, v.published_at, v.definition
              FROM learning_module_version v JOIN learning_module m ON m.id = v.module_id"""


def _version(row: asyncpg.Record) -> VersionRecord:
    return VersionRecord(
        module_id=row["module_id"],
        code=row["code"],
        version=row["version"],
        published_at=row["published_at"],
        definition=msgspec.convert(row["definition"], ModuleDefinition),
    )


async def get_versions(
    conn: asyncpg.Connection, keys: list[tuple[uuid.UUID, int]]
) -> list[VersionRecord]:
    rows = await conn.fetch(
        f"""{_VERSION}
            JOIN unnest($1::uuid[], $2::int[]) AS k(module_id, version)
              ON k.module_id = v.module_id AND k.version = v.version""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return [_version(row) for row in rows]


async def latest_version(conn: asyncpg.Connection, module_id: uuid.UUID) -> int | None:
    """The newest published version (None: no such module, or never published)."""
    version: int | None = await conn.fetchval(
        "SELECT latest_version FROM learning_module WHERE id = $1", module_id
    )
    return version


async def latest_versions(conn: asyncpg.Connection) -> list[tuple[uuid.UUID, int]]:
    """Every module's newest published version (recommendations rank all of them)."""
    rows = await conn.fetch(
        """SELECT id, latest_version FROM learning_module
           WHERE latest_version IS NOT NULL ORDER BY code"""
    )
    return [(row["id"], row["latest_version"]) for row in rows]


async def list_modules(
    conn: asyncpg.Connection,
    *,
    audience: Audience | None,
    competence: str | None,
    after: str | None,
    limit: int,
) -> list[tuple[uuid.UUID, int]]:
    """(id, latest version) of published modules in code order, after the code ``after``.

    ``competence`` is a component ("2.3") or a whole domain ("2").
    """
    rows = await conn.fetch(
        """SELECT m.id, m.latest_version
           FROM learning_module m
           JOIN learning_module_version v ON v.module_id = m.id AND v.version = m.latest_version
           WHERE ($1::text IS NULL OR $1 = ANY (v.audience))
             AND ($2::text IS NULL OR EXISTS (
                     SELECT 1 FROM unnest(v.components) AS c
                     WHERE c = $2 OR split_part(c, '.', 1) = $2))
             AND ($3::text IS NULL OR m.code > $3)
           ORDER BY m.code
           LIMIT $4""",
        audience,
        competence,
        after,
        limit,
    )
    return [(row["id"], row["latest_version"]) for row in rows]


async def create_module(
    conn: asyncpg.Connection,
    module_id: uuid.UUID,
    code: str,
    draft: ModuleDefinition,
    created_by: uuid.UUID,
) -> bool:
    """False when the id or the code is already taken."""
    inserted = await conn.fetchval(
        """INSERT INTO learning_module (id, code, draft, draft_updated_at, created_by)
           VALUES ($1, $2, $3, now(), $4)
           ON CONFLICT DO NOTHING RETURNING true""",
        module_id,
        code,
        msgspec.to_builtins(draft),
        created_by,
    )
    return bool(inserted)


async def lock_module(conn: asyncpg.Connection, module_id: uuid.UUID) -> dict[str, Any] | None:
    """The module's row (code, draft or None, latest version), locked until the end of the
    transaction."""
    row = await conn.fetchrow(
        "SELECT id, code, draft, latest_version FROM learning_module WHERE id = $1 FOR UPDATE",
        module_id,
    )
    return None if row is None else dict(row)


async def get_draft(
    conn: asyncpg.Connection, module_id: uuid.UUID
) -> tuple[str, ModuleDefinition, int | None] | None:
    """(code, the draft, None) or, without a draft, (code, the latest version, its number)."""
    row = await conn.fetchrow(
        """SELECT m.code, m.draft, m.latest_version, v.definition
           FROM learning_module m
           LEFT JOIN learning_module_version v
             ON v.module_id = m.id AND v.version = m.latest_version
           WHERE m.id = $1""",
        module_id,
    )
    if row is None:
        return None
    if row["draft"] is not None:
        return row["code"], msgspec.convert(row["draft"], ModuleDefinition), None
    return (
        row["code"],
        msgspec.convert(row["definition"], ModuleDefinition),
        row["latest_version"],
    )


async def save_draft(
    conn: asyncpg.Connection, module_id: uuid.UUID, draft: ModuleDefinition
) -> None:
    await conn.execute(
        "UPDATE learning_module SET draft = $2, draft_updated_at = now() WHERE id = $1",
        module_id,
        msgspec.to_builtins(draft),
    )


async def publish_draft(
    conn: asyncpg.Connection, module_id: uuid.UUID, published_by: uuid.UUID
) -> int:
    """Freeze the (locked) module's draft as the next version; returns its number."""
    version: int = await conn.fetchval(
        """WITH next AS (
               SELECT coalesce(max(version), 0) + 1 AS version
               FROM learning_module_version WHERE module_id = $1
           ), published AS (
               INSERT INTO learning_module_version
                   (module_id, version, definition, audience, components, published_by)
               SELECT $1, next.version, m.draft,
                      ARRAY(SELECT jsonb_array_elements_text(m.draft -> 'audience')),
                      ARRAY(SELECT jsonb_array_elements_text(
                                m.draft -> 'competences' -> 'components')),
                      $2
               FROM learning_module m, next WHERE m.id = $1
               RETURNING version
           )
           UPDATE learning_module
           SET draft = NULL, draft_updated_at = NULL,
               latest_version = (SELECT version FROM published)
           WHERE id = $1
           RETURNING latest_version""",
        module_id,
        published_by,
    )
    return version


# Attempts and progress ---------------------------------------------------------------------------


class LearnerState(msgspec.Struct, frozen=True, kw_only=True):
    lessons: list[str]
    completed: bool
    attempts: int
    passed: bool
    ward_id: int


async def stored_attempt(
    conn: asyncpg.Connection, attempt_id: uuid.UUID
) -> tuple[uuid.UUID, bytes] | None:
    """(module id, content hash) of an attempt already stored under this id."""
    row = await conn.fetchrow(
        "SELECT module_id, content_hash FROM learning_attempt WHERE id = $1", attempt_id
    )
    return None if row is None else (row["module_id"], row["content_hash"])


async def insert_attempt(conn: asyncpg.Connection, **row: Any) -> bool:
    """False when the id is taken (a retry or a conflicting reuse, told apart by the hash)."""
    inserted = await conn.fetchval(
        """INSERT INTO learning_attempt (id, module_id, version, learner_id, household_id,
                                         member_id, ward_id, province_id, submitted_by,
                                         taken_at, answers, correct, total, score, passed,
                                         content_hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
           ON CONFLICT (id) DO NOTHING RETURNING true""",
        row["id"],
        row["module_id"],
        row["version"],
        row["learner_id"],
        row["household_id"],
        row["member_id"],
        row["ward_id"],
        row["province_id"],
        row["submitted_by"],
        row["taken_at"],
        row["answers"],
        row["correct"],
        row["total"],
        row["score"],
        row["passed"],
        row["content_hash"],
    )
    return bool(inserted)


async def lock_learner(
    conn: asyncpg.Connection,
    *,
    module_id: uuid.UUID,
    learner_id: uuid.UUID,
    ward_id: int,
    province_id: int,
    household_id: uuid.UUID | None,
    record_key: int,
) -> LearnerState:
    """The learner's row for the module (created empty if new, with the learner's record
    key for the learning counters' key sums), locked for the transaction.

    Created first and locked second, so two concurrent updates of a new learner cannot both
    count them as new.
    """
    await conn.execute(
        """INSERT INTO learner_module
               (module_id, learner_id, ward_id, province_id, household_id, record_key)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (module_id, learner_id) DO NOTHING""",
        module_id,
        learner_id,
        ward_id,
        province_id,
        household_id,
        record_key,
    )
    row = await conn.fetchrow(
        """SELECT lessons, completed, attempts, passed, ward_id FROM learner_module
           WHERE module_id = $1 AND learner_id = $2 FOR UPDATE""",
        module_id,
        learner_id,
    )
    assert row is not None
    return LearnerState(
        lessons=list(row["lessons"]),
        completed=row["completed"],
        attempts=row["attempts"],
        passed=row["passed"],
        ward_id=row["ward_id"],
    )


async def update_learner(
    conn: asyncpg.Connection,
    *,
    module_id: uuid.UUID,
    learner_id: uuid.UUID,
    before: LearnerState,
    after: LearnerState,
    score: float | None,
) -> None:
    """Store the learner's new state and move the ward's counters by the difference."""
    await conn.execute(
        """WITH learner AS (
               UPDATE learner_module
               SET lessons = $3, completed = $4, attempts = $5, passed = $6,
                   best_score = greatest(best_score, $7), updated_at = now()
               WHERE module_id = $1 AND learner_id = $2
               RETURNING ward_id, province_id, record_key
           )
           INSERT INTO ward_learning AS w
               (ward_id, province_id, module_id, learners, completions, passed, attempts,
                learners_key, completions_key, passed_key, attempts_key)
           SELECT ward_id, province_id, $1, $8::int, $9::int, $10::int, $11::int,
                  $8::int * record_key, $9::int * record_key, $10::int * record_key,
                  $11::int * record_key
           FROM learner
           ON CONFLICT (ward_id, module_id) DO UPDATE
           SET learners = w.learners + EXCLUDED.learners,
               completions = w.completions + EXCLUDED.completions,
               passed = w.passed + EXCLUDED.passed,
               attempts = w.attempts + EXCLUDED.attempts,
               learners_key = w.learners_key + EXCLUDED.learners_key,
               completions_key = w.completions_key + EXCLUDED.completions_key,
               passed_key = w.passed_key + EXCLUDED.passed_key,
               attempts_key = w.attempts_key + EXCLUDED.attempts_key""",
        module_id,
        learner_id,
        after.lessons,
        after.completed,
        after.attempts,
        after.passed,
        score,
        int(after.attempts > 0 and before.attempts == 0),
        int(after.completed and not before.completed),
        int(after.passed and not before.passed),
        after.attempts - before.attempts,
    )


async def learner_progress(
    conn: asyncpg.Connection, module_id: uuid.UUID, learner_id: uuid.UUID
) -> LearnerState | None:
    row = await conn.fetchrow(
        """SELECT lessons, completed, attempts, passed, ward_id FROM learner_module
           WHERE module_id = $1 AND learner_id = $2""",
        module_id,
        learner_id,
    )
    if row is None:
        return None
    return LearnerState(
        lessons=list(row["lessons"]),
        completed=row["completed"],
        attempts=row["attempts"],
        passed=row["passed"],
        ward_id=row["ward_id"],
    )


# Learning statistics ---------------------------------------------------------------------------


class LearningCounts(NamedTuple):
    """Exact counts and their key sums (learners, completions, passed, attempts), from
    which ``api.stats.cards.learning_view`` builds what a caller may see."""

    learners: int
    completions: int
    passed: int
    attempts: int
    keys: tuple[int, int, int, int]

    def __add__(self, other: object) -> LearningCounts:
        assert isinstance(other, LearningCounts)
        return LearningCounts(
            self.learners + other.learners,
            self.completions + other.completions,
            self.passed + other.passed,
            self.attempts + other.attempts,
            (
                self.keys[0] + other.keys[0],
                self.keys[1] + other.keys[1],
                self.keys[2] + other.keys[2],
                self.keys[3] + other.keys[3],
            ),
        )


NO_LEARNERS = LearningCounts(0, 0, 0, 0, (0, 0, 0, 0))


class ModuleCounts(msgspec.Struct, frozen=True, kw_only=True):
    module_id: uuid.UUID
    code: str
    title: str
    counts: LearningCounts


class CompetenceCounts(msgspec.Struct, frozen=True, kw_only=True):
    component: str
    counts: LearningCounts  # sums over the modules tagged with the component


class LearningSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Learning counts summed over some wards: per module and per competence component."""

    modules: list[ModuleCounts]
    competences: list[CompetenceCounts]


VersionSource = Callable[
    [asyncpg.Connection, set[tuple[uuid.UUID, int]]],
    Awaitable[dict[tuple[uuid.UUID, int], VersionRecord]],
]


async def _read_versions(
    conn: asyncpg.Connection, keys: set[tuple[uuid.UUID, int]]
) -> dict[tuple[uuid.UUID, int], VersionRecord]:
    return {(r.module_id, r.version): r for r in await get_versions(conn, list(keys))}


async def learning_summary(
    conn: asyncpg.Connection,
    ward_ids: list[int] | None,
    language: str = "vi",
    versions: VersionSource = _read_versions,
    per_ward: Callable[[LearningCounts], LearningCounts] | None = None,
) -> LearningSummary:
    """Learners who attempted, completions and passes per published module, and per
    competence component (the sum over the modules tagged with it), for the given wards
    (``None``: the whole country). Reads only the per-ward counters: its cost does not grow
    with the number of learners. Modules nobody took are listed with zeros.

    ``per_ward``: what each ward's counts become before they are added up (the protection
    of published figures, ``api.stats.cards.perturbed_learning``); exact sums without it.

    Titles and components come from ``versions`` (pass ``ModuleCache.get``: published
    versions never change, so a card does not read module definitions every time)."""
    rows = await conn.fetch(
        """SELECT m.id, m.code, m.latest_version,
                  coalesce(w.learners, 0)::int AS learners,
                  coalesce(w.completions, 0)::int AS completions,
                  coalesce(w.passed, 0)::int AS passed,
                  coalesce(w.attempts, 0)::int AS attempts,
                  coalesce(w.learners_key, 0)::bigint AS learners_key,
                  coalesce(w.completions_key, 0)::bigint AS completions_key,
                  coalesce(w.passed_key, 0)::bigint AS passed_key,
                  coalesce(w.attempts_key, 0)::bigint AS attempts_key
           FROM learning_module m
           LEFT JOIN (
               SELECT module_id, CASE WHEN $2 THEN ward_id END AS ward_id,
                      sum(learners) AS learners, sum(completions) AS completions,
                      sum(passed) AS passed, sum(attempts) AS attempts,
                      sum(learners_key) AS learners_key, sum(completions_key) AS completions_key,
                      sum(passed_key) AS passed_key, sum(attempts_key) AS attempts_key
               FROM ward_learning
               WHERE $1::int[] IS NULL OR ward_id = ANY ($1::int[])
               GROUP BY module_id, 2
           ) w ON w.module_id = m.id
           WHERE m.latest_version IS NOT NULL
           ORDER BY m.code""",
        ward_ids,
        per_ward is not None,
    )
    described = await versions(conn, {(r["id"], r["latest_version"]) for r in rows})
    by_module: dict[uuid.UUID, ModuleCounts] = {}
    components: dict[uuid.UUID, list[str]] = {}
    for row in rows:
        counts = LearningCounts(
            row["learners"],
            row["completions"],
            row["passed"],
            row["attempts"],
            (row["learners_key"], row["completions_key"], row["passed_key"], row["attempts_key"]),
        )
        if per_ward is not None:
            counts = per_ward(counts)
        if row["id"] in by_module:
            module = by_module[row["id"]]
            by_module[row["id"]] = msgspec.structs.replace(module, counts=module.counts + counts)
            continue
        definition = described[(row["id"], row["latest_version"])].definition
        components[row["id"]] = list(definition.competences.components)
        by_module[row["id"]] = ModuleCounts(
            module_id=row["id"],
            code=row["code"],
            title=definition.title.en if language == "en" else definition.title.vi,
            counts=counts,
        )
    by_component: dict[str, LearningCounts] = {}
    for module in by_module.values():
        for component in components[module.module_id]:
            by_component[component] = by_component.get(component, NO_LEARNERS) + module.counts
    return LearningSummary(
        modules=list(by_module.values()),
        competences=[
            CompetenceCounts(component=component, counts=counts)
            for component, counts in sorted(
                by_component.items(), key=lambda item: [int(p) for p in item[0].split(".")]
            )
        ],
    )


async def ward_ids_of(conn: asyncpg.Connection, province_id: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM area WHERE province_id = $1 AND level = 'ward'", province_id
    )
    return [row["id"] for row in rows]
