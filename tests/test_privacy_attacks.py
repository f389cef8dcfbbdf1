"""Attacks on the published statistics (the cell key method, api/stats/disclosure.py), run as
an attacker runs them: through the HTTP API, against the real database, reading only what an
outsider (public cards), a province official (cards, children tables, series, exports) or an
admin may read. Each attack asserts a measured bound, derived from the perturbation table.

Determinism: every id that feeds a record key (households, members, learners) comes from a
seeded ``random.Random`` and the tests run with the fixed test secret, so every noise and every
rate below is the same on every run (``PRIVACY_ATTACK_SEED`` runs another seed). The bounds
hold for any seed: each says how likely a correct implementation is to break it (< 1e-6).

The noise of a large count (the table's last row) is -2, -1, 0, 1, 2 with chances 16, 63, 98,
63, 16 in 256; two cells with independent cell keys show the same noise with chance
Σp² ≈ 0.2755. Counts 1-4 are published as 0 or 5 and never as themselves.

Averaging parent − children over the months recovered hidden wards while a parent was
perturbed on its own; a parent is now the sum of its wards' perturbed counts
(api/stats/sums.py), and that attack asserts its bound like the others. ``pytest -s``
prints every measured rate.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
import os
import random
import re
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.stats.catalog import TIME_ZONE
from api.stats.disclosure import KEY_SPACE, MIN_DENOMINATOR, PTABLE, WITHHELD, part_key
from api.stats.periods import add_months, month_start, today
from tests.conftest import BA_DINH, HAC_THANH, HAM_RONG, THANH_HOA, Accounts, member, submission
from tests.test_modules import right_answers
from tests.test_stats import delete_through_resident, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
Headers = dict[str, str]
Json = dict[str, Any]

SEED = int(os.environ.get("PRIVACY_ATTACK_SEED", "411"))
ALPHA = 1e-6  # the chance a bound may fail for a correct implementation, per test

HA_NOI = "01"
BIM_SON = "14812"  # Thanh Hóa
NGOC_HA = "00008"  # Hà Nội
LAI_CHAU = "12"  # 38 wards: a province export small enough to read in a test
DOAN_KET, BINH_LU = "03388", "03390"  # wards of Lai Châu
LAI_CHAU_WARDS = ["03388", "03390", "03394", "03405"]
LONELY = ["03408", "03424", "03430", "03433", "03434", "03439", "03442", "03445"]

# The member indicators that count a yes/no answer among adults, and the answer.
FLAGS = {
    "ADULT_SMARTPHONE": "smartphone",
    "ADULT_DIGSIG": "digital_signature",
    "ADULT_EPAY": "epay",
    "ADULT_EPS": "eps_used",
    "DIGSKILL": "skills_trained",
}
ADULT_CODES = [*FLAGS, "ADULT_CLOUD"]  # every indicator over adults (age ≥ 15)
COUNTS = ("numerator", "denominator", "surveyed", "registered")
LEARNING_COUNTS = ("learners", "completions", "passed", "attempts")


# The perturbation table, as an attacker who read migrations/data/ptable.json knows it ------

KEYS = range(KEY_SPACE)
LARGE = 10_000  # any count from the table's last row on


@functools.cache
def noise_of(count: int) -> dict[int, float]:
    """The noise a cell of this true count gets, over the 256 cell keys."""
    found = Counter(PTABLE.noise(count, key) for key in KEYS)
    return {value: n / KEY_SPACE for value, n in found.items()}


def convolve(a: dict[int, float], b: dict[int, float]) -> dict[int, float]:
    summed: dict[int, float] = defaultdict(float)
    for x, p in a.items():
        for y, q in b.items():
            summed[x + y] += p * q
    return dict(summed)


@functools.cache
def spread(plus: int, minus: int) -> dict[int, float]:
    """The error of a sum of ``plus`` published large counts minus ``minus`` others, all
    with independent cell keys: what parent − children leaves over the hidden cells."""
    error = {0: 1.0}
    large = noise_of(LARGE)
    for _ in range(plus):
        error = convolve(error, large)
    for _ in range(minus):
        error = convolve(error, {-x: p for x, p in large.items()})
    return error


@functools.cache
def chance_shown(count: int, shown: int | None) -> float:
    """How likely a cell of ``count`` is published as ``shown`` (None: withheld, i.e.
    perturbed to 1 .. MIN_DENOMINATOR − 1, for a learning row)."""
    published = Counter(PTABLE.perturb(count, key) for key in KEYS)
    if shown is None:
        withheld = sum(n for value, n in published.items() if 0 < value < MIN_DENOMINATOR)
        return withheld / KEY_SPACE
    return published.get(shown, 0) / KEY_SPACE


def hidden_guess(
    estimate: int, shown: Sequence[int | None], error: dict[int, float], most: int = 12
) -> int:
    """The attacker's best guess (maximum a posteriori, each hidden cell uniform in
    0 .. most − 1) of the sum of hidden cells, from ``estimate`` (their sum plus an error
    distributed as ``error``) and what each hidden cell itself shows."""
    posterior: dict[int, float] = defaultdict(float)
    for counts in itertools.product(range(most), repeat=len(shown)):
        weight = math.prod(chance_shown(c, s) for c, s in zip(counts, shown, strict=True))
        if weight:
            posterior[sum(counts)] += weight * error.get(estimate - sum(counts), 0.0)
    return max(sorted(posterior), key=posterior.__getitem__)


# SHIFTED[s][d]: the chance that a large cell's noise moves by d when s is added to its key.
SHIFTED = [
    {
        d: n / KEY_SPACE
        for d, n in Counter(
            PTABLE.noise(LARGE, k + s) - PTABLE.noise(LARGE, k) for k in KEYS
        ).items()
    }
    for s in KEYS
]


def change_guess(diffs: list[int], candidates: Iterable[int]) -> int:
    """The attacker's best guess of a change t seen through several large cells (levels,
    periods, indicators) that all gained the same unknown key sum s: each difference of
    published counts is t + noise(K_i + s) − noise(K_i), with independent K_i."""

    def likelihood(t: int) -> float:
        return sum(math.prod(SHIFTED[s].get(d - t, 0.0) for d in diffs) for s in KEYS)

    return max(candidates, key=likelihood)


@functools.cache
def best_chance(hidden: int, low: int = 1, high: int = 4) -> float:
    """The chance that the best possible guess of the sum of ``hidden`` cells, each of a
    true count uniform in ``low`` .. ``high``, is exact, knowing only what each cell shows.
    A parent is the sum of its children's published cells, so parent − children tells no
    more than this: the bound for every attack that subtracts published figures."""
    shown_of = {c: Counter(PTABLE.perturb(c, key) for key in KEYS) for c in range(low, high + 1)}
    joint: dict[tuple[tuple[int, ...], int], float] = defaultdict(float)
    for truths in itertools.product(shown_of, repeat=hidden):
        for seen in itertools.product(*(shown_of[c].items() for c in truths)):
            weight = math.prod(n / KEY_SPACE for _, n in seen)
            joint[(tuple(v for v, _ in seen), sum(truths))] += weight
    best: dict[tuple[int, ...], float] = defaultdict(float)
    for (seen_values, _), weight in joint.items():
        best[seen_values] = max(best[seen_values], weight)
    return sum(best.values()) / (high - low + 1) ** hidden


def most_hits(chances: list[float], alpha: float = ALPHA) -> int:
    """The smallest L such that independent trials with these chances of an exact recovery
    recover more than L with probability below ``alpha`` (Poisson-binomial tail)."""
    dist = [1.0]
    for p in chances:
        dist = [
            (dist[k] if k < len(dist) else 0.0) * (1 - p) + (dist[k - 1] * p if k else 0.0)
            for k in range(len(dist) + 1)
        ]
    tail = 0.0
    for limit in range(len(dist) - 1, -1, -1):
        if tail + dist[limit] >= alpha:
            return limit
        tail += dist[limit]
    return 0


def test_the_attackers_model_of_the_table() -> None:
    """The numbers the bounds below rest on, recomputed from the table."""
    large = noise_of(LARGE)
    assert large == {-2: 16 / 256, -1: 63 / 256, 0: 98 / 256, 1: 63 / 256, 2: 16 / 256}
    assert abs(sum(p * p for p in large.values()) - 0.2755) < 1e-4
    assert abs(sum(SHIFTED[s].get(0, 0.0) for s in KEYS) / 256 - 0.2755) < 1e-4
    for count in range(1, 5):  # small counts are never published as themselves
        assert set(noise_of(count)) == {-count, 5 - count}
    assert most_hits([0.5] * 10, 0.5) == 5
    assert change_guess([3, 3, 3], range(8)) == 3


# Published figures: the rules every response obeys (item 7) --------------------------------


def protected(body: Any) -> Any:
    """Check a published JSON body outside an exact view: no count in 1 .. 4, a withheld
    figure carries no numbers and only the reason "privacy". Returns the body."""
    if isinstance(body, list):
        for item in body:
            protected(item)
    elif isinstance(body, dict):
        assert body.get("exact") is not True, "an exact view where only protected ones belong"
        for key in (*COUNTS, *LEARNING_COUNTS):
            value = body.get(key)
            assert not (isinstance(value, int) and 1 <= value <= 4), (key, body)
        if body.get("suppressed") is True:
            assert body.get("reason", WITHHELD) == WITHHELD, body
            assert all(body.get(key) is None for key in (*COUNTS, *LEARNING_COUNTS)), body
        elif body.get("suppressed") is False and "reason" in body:
            assert body["reason"] is None, body
        for value in body.values():
            if isinstance(value, dict | list):
                protected(value)
    return body


# Reading what the attacker reads ------------------------------------------------------------


async def get(client: Client, url: str, headers: Headers | None = None, **params: Any) -> Any:
    response = await client.get(url, params=params, headers=headers or {})
    assert response.status_code == 200, response.text
    return protected(response.json())


async def public(client: Client, code: str, period: str = "current", language: str = "vi") -> Json:
    body: Json = await get(
        client,
        f"/api/v1/public/areas/{code}/stats",
        {"Accept-Language": language},
        period=period,
    )
    return body


async def stats_card(client: Client, headers: Headers, code: str, period: str = "current") -> Json:
    body: Json = await get(client, f"/api/v1/stats/areas/{code}", headers, period=period)
    return body


async def series(client: Client, headers: Headers, code: str, indicator: str) -> list[Json]:
    body = await get(
        client, f"/api/v1/stats/areas/{code}/series", headers, indicator=indicator, grain="month"
    )
    points: list[Json] = body["points"]
    return points


async def children(
    client: Client, headers: Headers, code: str, indicator: str, period: str = "current"
) -> dict[str, Json]:
    body = await get(
        client,
        f"/api/v1/stats/areas/{code}/children",
        headers,
        indicator=indicator,
        period=period,
        limit=500,
    )
    return {row["area"]["code"]: row for row in body["items"]}


async def learning(client: Client, headers: Headers, code: str) -> Json:
    body: Json = await get(client, f"/api/v1/stats/areas/{code}/learning", headers)
    return body


def figure(card: Json, code: str) -> Json:
    found: Json = next(i for i in card["indicators"] if i["code"] == code)
    return found


def count(card: Json, code: str, field: str = "numerator") -> int:
    value = figure(card, code)[field]
    assert isinstance(value, int), (code, figure(card, code))
    return value


def month(back: int) -> str:
    return f"{add_months(month_start(today()), -back):%Y-%m}"


# Building the attacked areas through the API, with seeded ids --------------------------------


class World:
    """Households, members and learners created through the API (as the teams would) with
    ids from one seeded generator, so that every record key is the same on every run."""

    def __init__(self, client: Client, accounts: Accounts, seed: int = SEED) -> None:
        self.client = client
        self.accounts = accounts
        self.rng = random.Random(seed)
        self.teams: dict[str, Headers] = {}
        self.ward_of: dict[str, str] = {}
        self.heads: dict[str, Json] = {}  # household → its current submission
        self.modules: dict[str, str] = {}  # learning module code → id

    def uid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    async def team(self, ward: str) -> Headers:
        if ward not in self.teams:
            self.teams[ward] = await ward_team(self.accounts, ward)
        return self.teams[ward]

    async def official(self, role: str, area: str | None = None) -> Headers:
        return await self.accounts.headers(await self.accounts.create(role, area))

    async def households(self, ward: str, number: int) -> list[str]:
        team = await self.team(ward)
        made = []
        for _ in range(number):
            household = self.uid()
            response = await self.client.post(
                "/api/v1/households", json={"wardCode": ward, "id": household}, headers=team
            )
            assert response.status_code == 201, response.text
            self.ward_of[household] = ward
            made.append(household)
        return made

    def person(self, age: int, back: int = 0, **answers: Any) -> Json:
        """A member ``age`` years old in the year of a visit ``back`` months ago, with a
        new member id; every yes/no answer is no unless given."""
        year = add_months(month_start(today()), -back).year
        values = dict.fromkeys(FLAGS.values(), False) | {"vneid": "none", "cloud_accounts": 0}
        return member(year - age, member_id=self.uid(), **(values | answers))

    def adult(self, back: int = 0, chance: float = 0.5) -> Json:
        flags = {flag: self.rng.random() < chance for flag in FLAGS.values()}
        return self.person(self.rng.randint(20, 75), back, **flags)

    def visit(self, household: str, people: list[Json], back: int = 0, **answers: Any) -> Json:
        """A visit ``back`` months ago (now when 0), replacing the household's head if any."""
        if back == 0:
            collected = datetime.now(ZoneInfo(TIME_ZONE)).isoformat()
        else:
            collected = f"{add_months(month_start(today()), -back):%Y-%m}-15T09:00:00+07:00"
        head = self.heads.get(household)
        return submission(
            household,
            people,
            submission_id=self.uid(),
            supersedes=head["id"] if head else None,
            collected_at=collected,
            **answers,
        )

    async def push(self, items: list[Json]) -> None:
        """Push through each ward's team, 500 submissions at a time."""
        by_ward: dict[str, list[Json]] = defaultdict(list)
        for item in items:
            by_ward[self.ward_of[item["householdId"]]].append(item)
        for ward, batch in by_ward.items():
            for start in range(0, len(batch), 500):
                chunk = batch[start : start + 500]
                response = await self.client.post(
                    "/api/v1/sync/push", json={"submissions": chunk}, headers=await self.team(ward)
                )
                assert response.status_code == 200, response.text
                statuses = [r["status"] for r in response.json()["results"]]
                assert statuses == ["accepted"] * len(chunk), response.text
                for item in chunk:
                    self.heads[item["householdId"]] = item

    async def delete(self, household: str) -> None:
        """The household's resident deletes its data (every period forgets it)."""
        team = await self.team(self.ward_of[household])
        await delete_through_resident(self.client, team, household)
        self.heads.pop(household, None)

    def adults(self, household: str) -> int:
        """The household's members aged 15 or more at its current visit."""
        head = self.heads[household]
        year = int(head["collectedAt"][:4])
        return sum(year - m["answers"]["birth_year"] >= 15 for m in head["members"])


# 1. Parent minus children --------------------------------------------------------------------


def holders(world: World, people: int, flags: dict[str, int]) -> list[set[int]]:
    """For each flag, which of ``people`` hold it: exactly ``flags[flag]`` of them."""
    return [set(world.rng.sample(range(people), flags[flag])) for flag in FLAGS.values()]


def small_roster(world: World, people: int, hidden: dict[str, int], back: int = 0) -> list[Json]:
    """``people`` adults of whom exactly ``hidden[flag]`` hold each flag."""
    held = holders(world, people, hidden)
    return [
        world.person(
            world.rng.randint(20, 75),
            back,
            **{flag: index in held[n] for n, flag in enumerate(FLAGS.values())},
        )
        for index in range(people)
    ]


async def test_parent_minus_children_recovers_no_small_cell(
    client: Client, accounts: Accounts
) -> None:
    """Thanh Hóa = Hạc Thành + Bỉm Sơn (large) + Hàm Rồng, where 1 to 4 of 24 adults hold each
    answer; the nation = Thanh Hóa + Ba Đình (Hà Nội), again 1 to 4 of 24. From the public
    cards the attacker computes, per answer:

    (a) Thanh Hóa − Hạc Thành − Bỉm Sơn → Hàm Rồng's count (ward level),
    (b) Việt Nam − Thanh Hóa → Hà Nội's count (province level; other provinces are empty),
    (c) Việt Nam − Hạc Thành − Bỉm Sơn → both hidden counts together (several targets),

    then takes the count that best explains the difference and what the hidden cell itself
    shows (0 or 5: small counts never show as themselves). 12 independent setups (every
    member replaced by a re-visit, so every key is new) × 5 answers = 60 trials per attack.

    A parent is the sum of its wards' published cells (api/stats/sums.py), so each
    difference is exactly what the hidden cells show themselves: the attacker can do no
    better than guessing from those figures alone (``best_chance``).
    """
    world = World(client, accounts)
    rng = world.rng
    large = {ward: await world.households(ward, 4) for ward in (HAC_THANH, BIM_SON)}
    small = {ward: await world.households(ward, 3) for ward in (HAM_RONG, BA_DINH)}
    families: dict[str, list[bool]] = {"ward": [], "province": [], "several": []}
    raw_exact = 0
    for _ in range(12):
        truth = {ward: {flag: rng.randint(1, 4) for flag in FLAGS.values()} for ward in small}
        items = [
            world.visit(h, [world.adult() for _ in range(8)]) for hs in large.values() for h in hs
        ]
        for ward, households in small.items():
            roster = small_roster(world, 24, truth[ward])
            items += [world.visit(h, roster[8 * i : 8 * i + 8]) for i, h in enumerate(households)]
        await world.push(items)
        seen = {code: await public(client, code) for code in ("VN", THANH_HOA, *large, *small)}
        for code, flag in FLAGS.items():
            shown = {code_: count(card, code) for code_, card in seen.items()}
            x, y = truth[HAM_RONG][flag], truth[BA_DINH][flag]
            others = shown[HAC_THANH] + shown[BIM_SON]
            attacks = [
                ("ward", shown[THANH_HOA] - others, [shown[HAM_RONG]], spread(1, 2), x),
                ("province", shown["VN"] - shown[THANH_HOA], [shown[BA_DINH]], spread(1, 1), y),
                ("several", shown["VN"] - others, [shown[HAM_RONG], shown[BA_DINH]], spread(1, 2),
                 x + y),
            ]  # fmt: skip
            for family, estimate, hidden, error, true in attacks:
                assert estimate == sum(hidden), (family, code, estimate, hidden)
                families[family].append(hidden_guess(estimate, hidden, error) == true)
                raw_exact += estimate == true
    # Each attack's 60 trials are independent (new keys everywhere), so each bound below
    # fails with probability < 1e-6 / 3 for a correct implementation.
    chances = {"ward": best_chance(1), "province": best_chance(1), "several": best_chance(2)}
    report = {
        family: (sum(hits), most_hits([chances[family]] * len(hits), ALPHA / 3), len(hits))
        for family, hits in families.items()
    }
    print("parent − children", report, "raw differences exact", raw_exact, chances)
    for family, (hits, limit, _) in report.items():
        assert hits <= limit, (family, report, raw_exact)


def nearest_plausible(mean: float, shown: Sequence[int | None], most: int = 12) -> int:
    """The hidden sum nearest to ``mean`` that the hidden cells' own figures allow."""
    sums = {
        sum(counts)
        for counts in itertools.product(range(most), repeat=len(shown))
        if all(chance_shown(c, s) for c, s in zip(counts, shown, strict=True))
    }
    return min(sorted(sums), key=lambda s: abs(s - mean))


async def test_parent_minus_children_averaged_over_the_months(
    client: Client, accounts: Accounts
) -> None:
    """The same attacks on the 24 points of the monthly series (a province official's and an
    admin's): Hàm Rồng and Ba Đình were surveyed 23 months ago and never since (1 to 4 of 24
    adults hold each answer), while Hạc Thành has had a visit every month. Were a parent
    perturbed on its own, each month's Thanh Hóa − Hạc Thành would be Hàm Rồng's count plus
    fresh noise, and the mean of 24 months would converge on it (10-15 of 15 exact when
    parents were perturbed on their own). A parent is the sum of its wards' published cells,
    so every month's difference is exactly the hidden ward's own published figure: the same
    every month, nothing to average away."""
    world = World(client, accounts)
    rng = world.rng
    truth: dict[str, dict[str, int]] = {}
    items = []
    for ward in (HAM_RONG, BA_DINH):
        truth[ward] = {flag: rng.randint(1, 4) for flag in FLAGS.values()}
        roster = small_roster(world, 24, truth[ward], back=23)
        for i, household in enumerate(await world.households(ward, 3)):
            items.append(world.visit(household, roster[8 * i : 8 * i + 8], back=23))
    households = await world.households(HAC_THANH, 26)
    for household in households[:3]:
        items.append(world.visit(household, [world.adult(23) for _ in range(8)], back=23))
    for back, household in zip(range(22, -1, -1), households[3:], strict=True):
        items.append(world.visit(household, [world.adult(back) for _ in range(3)], back=back))
    await world.push(items)
    province = await world.official("province_official", THANH_HOA)
    admin = await world.official("admin")
    hidden = {ward: await public(client, ward) for ward in (HAM_RONG, BA_DINH)}
    averaged: list[bool] = []
    chances: list[float] = []
    for code, flag in FLAGS.items():
        points = {
            area: await series(client, province, area, code)
            for area in (THANH_HOA, HAC_THANH, HAM_RONG)
        }
        points["VN"] = await series(client, admin, "VN", code)
        points[BA_DINH] = await series(client, admin, BA_DINH, code)
        shown = {area: [p["numerator"] or 0 for p in found] for area, found in points.items()}
        x, y = truth[HAM_RONG][flag], truth[BA_DINH][flag]
        seen = {ward: count(card, code) for ward, card in hidden.items()}
        attacks = [
            (THANH_HOA, HAC_THANH, [HAM_RONG], x),
            ("VN", THANH_HOA, [BA_DINH], y),
            ("VN", HAC_THANH, [HAM_RONG, BA_DINH], x + y),
        ]
        for above, below, wards, true in attacks:
            estimates = [a - b for a, b in zip(shown[above], shown[below], strict=True)]
            own = [sum(shown[ward][month] for ward in wards) for month in range(24)]
            assert estimates == own, (code, above, below)  # exactly the wards' own figures
            assert len(set(estimates[1:])) == 1  # and the same since they were surveyed
            visible = [seen[ward] for ward in wards]
            averaged.append(nearest_plausible(sum(estimates[1:]) / 23, visible) == true)
            chances.append(best_chance(len(wards)))
    limit = most_hits(chances)
    print(f"averaged over 23 months: {sum(averaged)}/15 exact (bound {limit})")
    assert sum(averaged) <= limit, (sum(averaged), limit)


# 2. Before and after one household -----------------------------------------------------------

ROTATION = [HAC_THANH, BA_DINH, HAM_RONG, NGOC_HA]  # two wards in each of two provinces
PROVINCE_OF = {HAC_THANH: THANH_HOA, HAM_RONG: THANH_HOA, BA_DINH: HA_NOI, NGOC_HA: HA_NOI}
OPERATIONS = ["add now", "add last month", "edit now", "delete"]


async def test_one_household_before_and_after(client: Client, accounts: Accounts) -> None:
    """One household at a time is added (visited now, or last month and synced late), edited
    (a re-visit now that adds or removes an adult) or deleted by its resident; the attacker
    reads the public cards of its ward, its province and the nation, current and (when the
    change reaches it) last month's, before and after, and estimates the household's number
    of adults (the change in the adults' denominator). Changes rotate over four wards in two
    provinces, so that each change meets fresh keys at every level."""
    world = World(client, accounts)
    rng = world.rng
    spare: dict[str, list[str]] = {}  # households surveyed 2-5 months ago, to edit or delete
    items = []
    for ward in ROTATION:
        households = await world.households(ward, 12)
        for index, household in enumerate(households):
            back = 0 if index < 4 else rng.randint(2, 5)
            # 3 or 4 adults in each household surveyed months ago: last month's cells stay
            # large enough to be shown whatever is deleted.
            adults = rng.randint(3, 4) if back else rng.randint(1, 3)
            people = [world.adult(back) for _ in range(adults)]
            items.append(world.visit(household, people, back=back))
        spare[ward] = households[4:]
    await world.push(items)
    periods = ["current", month(1)]
    areas = ["VN", THANH_HOA, HA_NOI, *ROTATION]
    last = {(a, p): await public(client, a, p) for a in areas for p in periods}
    results: list[tuple[str, int, int, int]] = []  # operation, truth, combined, single guess
    for step in range(40):
        ward = ROTATION[step % 4]
        operation = OPERATIONS[(step // 4) % 4]
        if operation.startswith("add"):
            [household] = await world.households(ward, 1)
            back = 1 if operation == "add last month" else 0
            people = [world.adult(back) for _ in range(rng.randint(1, 3))]
            await world.push([world.visit(household, people, back=back)])
            truth, candidates = len(people), range(7)
        elif operation == "edit now":
            household = spare[ward].pop()
            members = list(world.heads[household]["members"])
            if len(members) > 1 and rng.random() < 0.5:
                members.pop(rng.randrange(len(members)))
                truth = -1
            else:
                members.append(world.adult())
                truth = 1
            await world.push([world.visit(household, members)])
            candidates = range(-3, 4)
        else:
            household = spare[ward].pop()
            truth, candidates = -world.adults(household), range(-6, 1)
            await world.delete(household)
        touched = periods if operation in ("add last month", "delete") else periods[:1]
        diffs = []
        for period in touched:
            for area in ("VN", PROVINCE_OF[ward], ward):
                after = await public(client, area, period)
                diffs.append(
                    count(after, "ADULT_SMARTPHONE", "denominator")
                    - count(last[(area, period)], "ADULT_SMARTPHONE", "denominator")
                )
                last[(area, period)] = after
        single = change_guess(diffs[2:3], candidates)
        results.append((operation, truth, change_guess(diffs, candidates), single))
    combined = sum(guess == truth for _, truth, guess, _ in results)
    single = sum(guess == truth for _, truth, _, guess in results)
    print(f"one household: exact {combined}/40 combining levels, {single}/40 from the ward")
    for operation in OPERATIONS:
        mine = [r for r in results if r[0] == operation]
        print(f"  {operation}: {sum(r[2] == r[1] for r in mine)}/{len(mine)}")
    # Exact chances from the table (the best guess over independent keys sharing the
    # household's key sum): 3 cells 0.494 (add now, edit), 6 cells 0.671 (a month back,
    # delete); one cell 0.2755. A model of this very sequence (uniform keys, 6000 runs) has
    # a spread 3 % above independent trials: 0.03 more on every chance covers it. So the
    # combined attacker is exact for at most 38 of 40 (expected 23: wrong for ≥ 5 %), the
    # ward alone for at most 27 (expected 11: wrong for ≥ 32 %), each failing with < 5e-7.
    # (Few trials at a chance near one half allow no tighter bound at 1e-6.)
    chance = {"add now": 0.494, "add last month": 0.671, "edit now": 0.492, "delete": 0.672}
    limit = most_hits([chance[r[0]] + 0.03 for r in results], ALPHA / 2)
    assert combined <= limit, (combined, limit, results)
    assert single <= most_hits([0.2755 + 0.03] * len(results), ALPHA / 2), (single, results)


async def test_a_household_is_not_betrayed_by_the_cells_it_is_not_in(
    client: Client, accounts: Accounts
) -> None:
    """One-adult households are added one at a time (half of them with a smartphone) in the
    same four wards; the attacker says "no smartphone" when the published count of adults
    with a smartphone stayed the same in the ward, the province and the nation. (When a
    numerator's noise was drawn with its own contributors' key alone, a household outside
    it left it unchanged, and this rule was right for 24 of 24.)"""
    world = World(client, accounts)
    items = []
    for ward in ROTATION:
        for household in await world.households(ward, 5):
            items.append(world.visit(household, [world.adult() for _ in range(4)]))
    await world.push(items)
    last = {area: await public(client, area) for area in ("VN", THANH_HOA, HA_NOI, *ROTATION)}
    holders: list[bool] = []
    unchanged: list[bool] = []
    for step in range(24):
        ward = ROTATION[step % 4]
        [household] = await world.households(ward, 1)
        has = world.rng.random() < 0.5
        await world.push([world.visit(household, [world.person(40, smartphone=has)])])
        same = True
        for area in ("VN", PROVINCE_OF[ward], ward):
            after = await public(client, area)
            same &= count(after, "ADULT_SMARTPHONE") == count(last[area], "ADULT_SMARTPHONE")
            last[area] = after
        holders.append(has)
        unchanged.append(same)
    right = sum(has != same for has, same in zip(holders, unchanged, strict=True))
    kept = sum(same for has, same in zip(holders, unchanged, strict=True) if not has)
    print(
        f"'unchanged ⇒ no smartphone' right {right}/24; non-holders unchanged {kept}/"
        f"{holders.count(False)}"
    )
    # The adult's key k enters every level's numerator key through the denominator's
    # (part_key): a non-holder's count stays put at all three levels only if three noises
    # moved by the same shift all keep their value, E[q³] = 0.115 over k; a holder's (one
    # more) only if all three drop by one, 0.045. 0.03 more on each chance covers the
    # chains of the rotation (as above); each bound fails with chance < 5e-7.
    keep = sum(SHIFTED[part_key(0, k)].get(0, 0.0) ** 3 for k in KEYS) / KEY_SPACE
    drop = sum(SHIFTED[part_key(k, k)].get(-1, 0.0) ** 3 for k in KEYS) / KEY_SPACE
    assert abs(keep - 0.115) < 1e-3
    assert abs(drop - 0.045) < 1e-3
    assert kept <= most_hits([keep + 0.03] * holders.count(False), ALPHA / 2), kept
    chances = [1 - drop + 0.03 if has else keep + 0.03 for has in holders]
    assert right <= most_hits(chances, ALPHA / 2), right


# 3. Indicators sharing a denominator -----------------------------------------------------------


def fourteen(card: Json) -> int:
    """ADULT_EID's denominator (age ≥ 14) minus the adults' (≥ 15): the 14-year-olds."""
    return count(card, "ADULT_EID", "denominator") - count(card, "ADULT_SMARTPHONE", "denominator")


async def test_shared_denominators_do_not_give_away_their_difference(
    client: Client, accounts: Accounts
) -> None:
    """The adults (≥ 15) are the denominator of six indicators and the same cell in all of
    them; ADULT_EID counts from 14. Its denominator minus ADULT_SMARTPHONE's is the number
    of 14-year-olds. In Hạc Thành and Ba Đình 1 to 4 of them live among 16 adults; the
    other ward of each province has adults only. 20 setups (new members each time): the
    attacker reads each ward's difference, combines it with its province's, and reads the
    nation's (both wards' 14-year-olds together)."""
    world = World(client, accounts)
    rng = world.rng
    home = {ward: (await world.households(ward, 1))[0] for ward in ROTATION}
    families: dict[str, list[bool]] = {"ward": [], "province": [], "nation": []}
    for _ in range(20):
        young = {HAC_THANH: rng.randint(1, 4), BA_DINH: rng.randint(1, 4)}
        items = []
        for ward, household in home.items():
            people = [world.adult() for _ in range(16)]
            people += [world.person(14) for _ in range(young.get(ward, 0))]
            items.append(world.visit(household, people))
        await world.push(items)
        seen = {a: await public(client, a) for a in ("VN", THANH_HOA, HA_NOI, HAC_THANH, BA_DINH)}
        for card in seen.values():  # identical contributors, identical cells
            assert len({count(card, code, "denominator") for code in ADULT_CODES}) == 1

        diff = {area: fourteen(card) for area, card in seen.items()}
        for ward, province in ((HAC_THANH, THANH_HOA), (BA_DINH, HA_NOI)):
            families["ward"].append(change_guess([diff[ward]], range(9)) == young[ward])
            guess = change_guess([diff[ward], diff[province]], range(9))
            families["province"].append(guess == young[ward])
        families["nation"].append(change_guess([diff["VN"]], range(9)) == sum(young.values()))
    # One difference is exact with chance Σp² = 0.2755 (0.30 for the nation, whose largest
    # possible total, 8, is also the attacker's largest guess); ward and province together
    # (the same 14-year-olds behind independent keys), 0.382 (exact enumeration). Trials of
    # one family are independent (new keys; two provinces), so each bound fails with chance
    # < 1e-6 / 3: 26 and 31 of 40, 17 of 20.
    chances = {"ward": 0.2755, "province": 0.382, "nation": 0.30}
    report = {
        family: (sum(hits), most_hits([chances[family]] * len(hits), ALPHA / 3), len(hits))
        for family, hits in families.items()
    }
    print("shared denominators", report)
    for family, (hits, limit, _) in report.items():
        assert hits <= limit, (family, report)


# 4. Coverage against the indicators -------------------------------------------------------------


async def test_never_surveyed_households_stay_hidden(client: Client, accounts: Accounts) -> None:
    """Household indicators count surveyed households: their denominator and
    ``coverage.surveyed`` are one cell. ``registered − surveyed`` is the households never
    surveyed. Each of 12 rounds registers 1 to 4 new households in each of three wards and
    surveys the previous round's; the attacker estimates the never-surveyed per ward, in
    Thanh Hóa (two wards) and in the nation."""
    world = World(client, accounts)
    rng = world.rng
    wards = [HAC_THANH, HAM_RONG, BA_DINH]
    waiting: dict[str, list[str]] = {ward: await world.households(ward, 12) for ward in wards}
    families: dict[str, list[bool]] = {"ward": [], "province": [], "nation": []}
    for _ in range(12):
        await world.push([world.visit(h, [world.adult()]) for hs in waiting.values() for h in hs])
        waiting = {ward: await world.households(ward, rng.randint(1, 4)) for ward in wards}
        seen = {a: await public(client, a) for a in ("VN", THANH_HOA, *wards)}
        for card in seen.values():
            # One cell, the surveyed households; coverage caps it at the registered ones.
            surveyed = count(card, "HH_SMART_DEVICE", "denominator")
            assert count(card, "HH_BROADBAND", "denominator") == surveyed
            coverage = card["coverage"]
            assert coverage["surveyed"] == min(surveyed, coverage["registered"])
        # A province adds up its wards' perturbed counts (before any cap).
        in_wards = sum(seen[ward]["coverage"]["registered"] for ward in (HAC_THANH, HAM_RONG))
        assert seen[THANH_HOA]["coverage"]["registered"] == in_wards

        never = {
            area: int(card["coverage"]["registered"])
            - count(card, "HH_SMART_DEVICE", "denominator")
            for area, card in seen.items()
        }
        for ward in wards:
            families["ward"].append(change_guess([never[ward]], range(9)) == len(waiting[ward]))
        truth = len(waiting[HAC_THANH]) + len(waiting[HAM_RONG])
        families["province"].append(change_guess([never[THANH_HOA]], range(13)) == truth)
        everyone = sum(len(hs) for hs in waiting.values())
        families["nation"].append(change_guess([never["VN"]], range(17)) == everyone)
    # One difference of two independent cells is exact with chance 0.2755; each family's
    # trials are independent (each round's keys are new), each bound fails with < 1e-6 / 3:
    # 24 of 36 wards, 11 of 12 rounds for Thanh Hóa and the nation.
    report = {
        family: (sum(hits), most_hits([0.2755] * len(hits), ALPHA / 3), len(hits))
        for family, hits in families.items()
    }
    print("never surveyed", report)
    for family, (hits, limit, _) in report.items():
        assert hits <= limit, (family, report)


# 5. Learning: competences against modules, provinces against wards -------------------------------


async def learners(world: World, ward: str, household: str, module: str, number: int) -> None:
    """``number`` new learners of the household take (and pass) a module's quiz (by code)."""
    attempts = [
        {
            "attemptId": world.uid(),
            "moduleId": world.modules[module],
            "answers": right_answers(module),
            "householdId": household,
            "memberId": world.uid(),
        }
        for _ in range(number)
    ]
    response = await world.client.post(
        "/api/v1/sync/push", json={"attempts": attempts}, headers=await world.team(ward)
    )
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted"] * number


def learned(body: Json, kind: str, name: str) -> int | None:
    """A module's (by code) or a competence's (by component) published learners."""
    rows = body["modules"] if kind == "module" else body["competences"]
    row = next(r for r in rows if r["code" if kind == "module" else "component"] == name)
    value: int | None = row["learners"]
    return value


async def test_small_module_counts_stay_hidden(client: Client, accounts: Accounts) -> None:
    """Hàm Rồng has 12 learners of vneid_level2 and 12 of public_services_portal, Hạc Thành
    12 of digital_signature. In each of 30 trials 1 to 4 new learners of Hàm Rồng pass
    digital_signature (their household is deleted afterwards). Their row is withheld or 0;
    the attacker recovers it from

    (a) competence 2.6 (vneid_level2 + digital_signature) − vneid_level2, in Hàm Rồng,
    (b) competence 2.3 (those two + public_services_portal) − the other two, in Hàm Rồng,
    (c) Thanh Hóa's digital_signature − Hạc Thành's.
    """
    world = World(client, accounts)
    rng = world.rng
    listed = await client.get("/api/v1/modules", headers=await world.team(HAM_RONG))
    world.modules = {m["code"]: m["id"] for m in listed.json()["items"]}
    [ham_rong] = await world.households(HAM_RONG, 1)
    [hac_thanh] = await world.households(HAC_THANH, 1)
    await learners(world, HAM_RONG, ham_rong, "vneid_level2", 12)
    await learners(world, HAM_RONG, ham_rong, "public_services_portal", 12)
    await learners(world, HAC_THANH, hac_thanh, "digital_signature", 12)
    province = await world.official("province_official", THANH_HOA)
    others = await learning(client, province, HAC_THANH)
    families: dict[str, list[bool]] = {"2.6": [], "2.3": [], "province": []}
    for _ in range(30):
        hidden = rng.randint(1, 4)
        [household] = await world.households(HAM_RONG, 1)
        await learners(world, HAM_RONG, household, "digital_signature", hidden)
        ward = await learning(client, province, HAM_RONG)
        whole = await learning(client, province, THANH_HOA)
        shown = [learned(ward, "module", "digital_signature")]
        vneid = learned(ward, "module", "vneid_level2")
        portal = learned(ward, "module", "public_services_portal")
        assert vneid is not None
        assert portal is not None
        attacks = [
            ("2.6", learned(ward, "competence", "2.6"), vneid, spread(1, 1)),
            ("2.3", learned(ward, "competence", "2.3"), vneid + portal, spread(1, 2)),
            ("province", learned(whole, "module", "digital_signature"),
             learned(others, "module", "digital_signature"), spread(1, 1)),
        ]  # fmt: skip
        for family, parent, known, error in attacks:
            assert parent is not None
            assert known is not None
            families[family].append(hidden_guess(parent - known, shown, error) == hidden)
        await world.delete(household)
    # The subtracted rows stay the same in every trial and the hidden learners' key sum is
    # both the hidden row's key and part of the parent's: each trial's chance depends on
    # the (unknown, fixed) keys of the subtracted rows. Enumerating them, it is at most
    # 0.496 (a, c; 0.411 on average) and 0.346 (b; 0.163 on average). Given those keys the
    # trials are independent, so each bound fails with chance < 1e-6 / 3: 28, 24 and 28
    # of 30. (So few trials at such chances only catch a gross leak.)
    worst = {"2.6": 0.496, "2.3": 0.346, "province": 0.496}
    report = {
        family: (sum(hits), most_hits([worst[family]] * len(hits), ALPHA / 3), len(hits))
        for family, hits in families.items()
    }
    print("learning", report)
    for family, (hits, limit, _) in report.items():
        assert hits <= limit, (family, report)


# 6. Every view against every other ------------------------------------------------------------


def core(figure_: Json) -> tuple[Any, ...]:
    """What a view shows of one cell (names, targets and forecasts aside)."""
    return (
        figure_["numerator"],
        figure_["denominator"],
        figure_["value"],
        figure_["suppressed"],
        figure_["reason"],
    )


def csv_rows(content: bytes, language: str) -> list[list[str]]:
    text = content.decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=";" if language == "vi" else ","))


def xlsx_rows(content: bytes) -> list[list[str]]:
    """The first sheet's rows as text (shared or inline strings, numbers as written)."""
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in book.namelist():
            strings = book.read("xl/sharedStrings.xml").decode()
            shared = [
                "".join(re.findall(r"<t[^>]*>(.*?)</t>", item, re.S))
                for item in re.findall(r"<si>(.*?)</si>", strings, re.S)
            ]
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    rows = []
    for row in re.findall(r"<row[^>]*>(.*?)</row>", sheet, re.S):
        cells: dict[int, str] = {}
        for column, attributes, body in re.findall(
            r'<c r="([A-Z]+)\d+"([^>]*?)(?:/>|>(.*?)</c>)', row, re.S
        ):
            value = re.search(r"<v>(.*?)</v>", body or "", re.S)
            text = re.search(r"<t[^>]*>(.*?)</t>", body or "", re.S)
            if 't="s"' in attributes and value:
                cells[ord(column) - ord("A")] = shared[int(value[1])]
            elif text:
                cells[ord(column) - ord("A")] = text[1]
            elif value:
                cells[ord(column) - ord("A")] = value[1]
        rows.append([cells.get(i, "") for i in range(max(cells, default=-1) + 1)])
    return rows


def exported(rows: list[list[str]], area: str, indicator: str, back: int) -> tuple[Any, Any]:
    """(numerator, denominator) of an export's row ``back`` months before the last (rows of
    one area and indicator come oldest first); None where the cell is withheld."""
    mine = [row for row in rows[1:] if row[1] == area and row[4] == indicator]
    assert len(mine) == 24, (area, indicator, len(mine))
    row = mine[-1 - back]

    def number(text: str) -> int | None:
        return None if text == "" else int(float(re.sub(r"[.,\u00a0 ]", "", text)))

    return number(row[6]), number(row[7])


async def test_every_view_shows_the_same_cell(client: Client, accounts: Accounts) -> None:
    """The same cell is published identically in the public card (vi, en), a province
    official's and an admin's card, the card of the current month and of a past month, the
    children tables, the monthly series, the CSV exports (vi and en, ward and province), the
    XLSX export, the learning rows of cards and of /learning, and on every repeated read:
    there is nothing to average. Lai Châu (38 wards) keeps the province export small."""
    world = World(client, accounts)
    rng = world.rng
    items = []
    for ward, number in ((DOAN_KET, 20), (BINH_LU, 8)):
        for household in await world.households(ward, number):
            back = rng.choice([0, 0, 1, 2, 3, 5])
            people = [world.adult(back) for _ in range(rng.randint(1, 3))]
            people += [world.person(rng.randint(3, 14), back) for _ in range(rng.randint(0, 2))]
            answers = {
                "hh_broadband": rng.choice(["fibre", "other_fixed", "mobile_only", "none"]),
                "hh_smart_devices": rng.randint(0, 3),
            }
            items.append(world.visit(household, people, back=back, **answers))
    await world.push(items)
    listed = await client.get("/api/v1/modules", headers=await world.team(DOAN_KET))
    world.modules = {m["code"]: m["id"] for m in listed.json()["items"]}
    teaching = next(iter(world.heads))
    await learners(world, DOAN_KET, teaching, "vneid_level2", 14)
    await learners(world, DOAN_KET, teaching, "scam_awareness", 3)
    official = await world.official("province_official", LAI_CHAU)
    admin = await world.official("admin")
    reader = {DOAN_KET: official, LAI_CHAU: official, "VN": admin}
    parent = {DOAN_KET: LAI_CHAU, LAI_CHAU: "VN"}
    past = month(2)

    views: dict[tuple[str, str], list[Json]] = {}  # (area, period) → cards that must agree
    for area in (DOAN_KET, LAI_CHAU, "VN"):
        for period in ("current", past):
            views[(area, period)] = [
                *[await public(client, area, period) for _ in range(3)],
                await public(client, area, period, "en"),
                await stats_card(client, reader[area], area, period),
                await stats_card(client, {**reader[area], "Accept-Language": "en"}, area, period),
            ]
        views[(area, "current")].append(await stats_card(client, reader[area], area, month(0)))
    for (area, period), cards in views.items():
        first = cards[0]
        for other in cards[1:]:
            assert [core(f) for f in other["indicators"]] == [core(f) for f in first["indicators"]]
            assert other["coverage"] == first["coverage"], (area, period)
    cell = {
        (area, period, code): core(figure(cards[0], code))
        for (area, period), cards in views.items()
        for code in (f["code"] for f in cards[0]["indicators"])
    }
    codes = sorted({code for _, _, code in cell})
    assert any(not v[3] and v[0] for v in cell.values()), "some figures are shown"

    for code in codes:
        for area in (DOAN_KET, LAI_CHAU):  # children tables, current and past
            for period in ("current", past):
                above = parent[area]
                rows = [await children(client, reader[above], above, code, period)]
                if code == codes[0]:  # read again: the same rows
                    rows.append(await children(client, reader[above], above, code, period))
                    assert rows[0] == rows[1]
                assert core(rows[0][area]["indicator"]) == cell[(area, period, code)]
                card = views[(area, period)][0]
                assert rows[0][area]["coverage"] == card["coverage"]
        for area in (DOAN_KET, LAI_CHAU, "VN"):  # series: the current month and a past one
            points = await series(client, reader[area], area, code)
            if code == codes[0]:
                assert points == await series(client, reader[area], area, code)
            assert core(points[-1]) == cell[(area, "current", code)]
            assert core(points[-3]) == cell[(area, past, code)]

    exports: dict[str, list[list[str]]] = {}
    for area, kind, language in (
        (DOAN_KET, "csv", "vi"), (DOAN_KET, "csv", "en"), (DOAN_KET, "xlsx", "vi"),
        (LAI_CHAU, "csv", "vi"), (LAI_CHAU, "csv", "en"),
    ):  # fmt: skip
        response = await client.get(
            f"/api/v1/stats/areas/{area}/export.{kind}",
            headers={**official, "Accept-Language": language},
        )
        assert response.status_code == 200, response.text
        found = (
            csv_rows(response.content, language) if kind == "csv" else xlsx_rows(response.content)
        )
        exports[f"{area} {kind} {language}"] = found
    for name, table in exports.items():
        for area in (DOAN_KET, LAI_CHAU) if name.startswith(LAI_CHAU) else (DOAN_KET,):
            for code in codes:
                for back, period in ((0, "current"), (2, past)):
                    numerator, denominator, _, withheld, _ = cell[(area, period, code)]
                    shown = exported(table, area, code, back)
                    assert shown == ((None, None) if withheld else (numerator, denominator)), (
                        name, area, code, period)  # fmt: skip

    for area in (DOAN_KET, LAI_CHAU, "VN"):  # learning: cards (each view) and /learning
        blocks = [card["learning"] for card in views[(area, "current")][:-1]]
        if area != "VN":
            endpoint = await learning(client, official, area)
            blocks.append({"modules": endpoint["modules"], "competences": endpoint["competences"]})
        rows_of = [
            [tuple(r.get(k) for k in (*LEARNING_COUNTS, "suppressed")) for r in b["modules"]]
            + [tuple(r.get(k) for k in (*LEARNING_COUNTS, "suppressed")) for r in b["competences"]]
            for b in blocks
        ]
        assert all(rows == rows_of[0] for rows in rows_of), area
    modules = {m["code"]: m for m in views[(DOAN_KET, "current")][0]["learning"]["modules"]}
    assert modules["vneid_level2"]["learners"] is not None  # 14 learners: shown, perturbed


# 7. No small count, one reason ------------------------------------------------------------------


async def small_cells(world: World) -> None:
    """Lai Châu wards with small counts of everything: households, adults, 14-year-olds,
    cloud accounts, learners and attempts, over the last months."""
    rng = world.rng
    items = []
    for size, ward in enumerate(LAI_CHAU_WARDS, start=1):
        for household in await world.households(ward, size * 2 - 1):
            back = rng.randint(0, 4)
            people = [
                world.person(rng.randint(15, 80), back, smartphone=rng.random() < 0.3,
                             cloud_accounts=rng.choice([0, 0, 1, 4]), vneid="level2")
                for _ in range(rng.randint(1, size))
            ]  # fmt: skip
            people += [world.person(14, back) for _ in range(rng.randint(0, 1))]
            items.append(world.visit(household, people, back=back, hh_smart_devices=size - 1))
    await world.push(items)
    listed = await world.client.get("/api/v1/modules", headers=await world.team(DOAN_KET))
    world.modules = {m["code"]: m["id"] for m in listed.json()["items"]}
    for size, ward in enumerate(LAI_CHAU_WARDS, start=1):
        household = next(h for h in world.heads if world.ward_of[h] == ward)
        for module in ("vneid_level2", "scam_awareness", "cloud_backup")[: size - 1]:
            await learners(world, ward, household, module, size * 2 - 1)
    # Two learners who failed twice: more attempts than learners.
    household = next(h for h in world.heads if world.ward_of[h] == DOAN_KET)
    retry = [
        {"attemptId": world.uid(), "moduleId": world.modules["vneid_level2"],
         "answers": {"q1": ["a"]}, "householdId": household, "memberId": world.uid()}
        for _ in range(2)
    ]  # fmt: skip
    for attempt in (retry, [dict(a, attemptId=world.uid()) for a in retry]):
        response = await world.client.post(
            "/api/v1/sync/push", json={"attempts": attempt}, headers=await world.team(DOAN_KET)
        )
        assert response.status_code == 200, response.text


async def everything_published(world: World) -> list[Any]:
    """Every protected view of the small cells: cards of every month shown, children
    tables, series, learning rows and the province's CSV export (as counts)."""
    client = world.client
    official = await world.official("province_official", LAI_CHAU)
    ward_official = await world.official("ward_official", DOAN_KET)
    seen: list[Any] = []
    for area in (*LAI_CHAU_WARDS, LAI_CHAU, "VN"):
        for period in ("current", *(month(back) for back in range(5))):
            seen.append(await public(client, area, period))
    for code in [*FLAGS, "ADULT_CLOUD", "ADULT_EID", "HH_SMART_DEVICE", "HH_BROADBAND"]:
        for period in ("current", month(2)):
            seen.append(await children(client, official, LAI_CHAU, code, period))
        for area in LAI_CHAU_WARDS:
            seen.append(await series(client, official, area, code))
    for area in (*LAI_CHAU_WARDS, LAI_CHAU):
        seen.append(await learning(client, official, area))
    response = await client.get(
        f"/api/v1/stats/areas/{LAI_CHAU}/export.csv", headers={**official, "Accept-Language": "en"}
    )
    assert response.status_code == 200, response.text
    note = csv_rows(response.content, "en")[0].index("Note")
    for row in csv_rows(response.content, "en")[1:]:
        numbers = [None if text == "" else int(text.replace(",", "")) for text in row[6:8]]
        seen.append({"numerator": numbers[0], "denominator": numbers[1]})
        assert (numbers == [None, None]) == (row[note] != ""), row  # withheld ⇔ a note
    # The exact view of one's own ward is the only place small counts appear.
    own = await client.get(f"/api/v1/stats/areas/{DOAN_KET}", headers=ward_official)
    assert own.json()["exact"] is True
    return seen


def rows_in(body: Any) -> Iterator[Json]:
    """Every object in a published body."""
    if isinstance(body, list):
        for item in body:
            yield from rows_in(item)
    elif isinstance(body, dict):
        yield body
        for value in body.values():
            yield from rows_in(value)


async def test_no_published_count_is_small_and_withheld_means_privacy(
    client: Client, accounts: Accounts
) -> None:
    """Item 7 over every protected view of cells of every small size: each read is checked
    by :func:`protected` (no count in 1..4, withheld means "privacy" and nothing else).
    ADULT_CLOUD's numerator can break it (see the last test); these cells happen not to."""
    world = World(client, accounts)
    await small_cells(world)
    seen = await everything_published(world)
    withheld = [row for row in rows_in(seen) if row.get("suppressed") is True]
    print(f"rows checked: {sum(1 for _ in rows_in(seen))}, withheld {len(withheld)}")
    assert withheld, "small cells were withheld somewhere"


def behind_zeros(body: Any, found: list[Any]) -> list[Any]:
    """Published rows whose base shows 0 (nobody: no adult, no learner, no household) while
    another count of the same row is positive."""
    if isinstance(body, list):
        for item in body:
            behind_zeros(item, found)
    elif isinstance(body, dict):
        for base, others in (
            ("denominator", ("numerator",)),
            ("registered", ("surveyed",)),
            ("learners", ("completions", "passed", "attempts")),
        ):
            if body.get(base) == 0 and any(body.get(k) for k in others):
                found.append({k: body.get(k) for k in ("code", "component", base, *others)})
        for value in body.values():
            if isinstance(value, dict | list):
                behind_zeros(value, found)
    return found


async def test_a_published_zero_hides_whether_anyone_is_there(
    client: Client, accounts: Accounts
) -> None:
    """Counts 1 to 4 are published as 0 so that "nobody" and "a few" look alike; the other
    counts of the same row must not tell them apart again, nor show a count in 1..4.

    Eight wards of Lai Châu each have one household of two adults with 4 cloud accounts
    each, re-visited 8 times with new members (64 cells of ADULT_CLOUD, read in the
    province's children table), and one learner per module who failed its quiz three
    times (48 learning rows). Two adults are shown as 0 with chance 154/256; 8 accounts
    over 2 adults get 4 × the noise, which lands on 8 − 4 = 4 with chance 63/256. One
    learner is shown as 0 with chance 205/256, and 3 attempts as 5 with 102/256. (Before
    a zero base zeroed its row and scaled noise was kept off 1..4, 53 of these 112 rows
    showed a positive count over a zero base, and 13 ratios were in 1..4.)
    """
    world = World(client, accounts)
    listed = await client.get("/api/v1/modules", headers=await world.team(DOAN_KET))
    world.modules = {m["code"]: m["id"] for m in listed.json()["items"]}
    official = await world.official("province_official", LAI_CHAU)
    home = {ward: (await world.households(ward, 1))[0] for ward in LONELY}
    seen: list[Any] = []
    for _ in range(8):
        for household in home.values():
            people = [world.person(40, cloud_accounts=4) for _ in range(2)]
            await world.push([world.visit(household, people)])
        response = await client.get(
            f"/api/v1/stats/areas/{LAI_CHAU}/children",
            params={"indicator": "ADULT_CLOUD", "limit": 500},
            headers=official,
        )
        assert response.status_code == 200, response.text
        seen += [
            row["indicator"] for row in response.json()["items"] if row["area"]["code"] in home
        ]
    for ward, household in home.items():
        attempts = [
            {"attemptId": world.uid(), "moduleId": module, "answers": {"q1": ["a"]},
             "householdId": household, "memberId": learner}
            for module in world.modules.values()
            for learner in [world.uid()]
            for _ in range(3)
        ]  # fmt: skip
        response = await client.post(
            "/api/v1/sync/push", json={"attempts": attempts}, headers=await world.team(ward)
        )
        assert response.status_code == 200, response.text
        seen.append(
            (await client.get(f"/api/v1/stats/areas/{ward}/learning", headers=official)).json()
        )
    found = behind_zeros(seen, [])
    small = [row for row in seen[:64] if 1 <= (row["numerator"] or 0) <= 4]
    print(
        f"rows with a positive count over a zero base: {len(found)}; ratios in 1..4: {len(small)}"
    )
    assert not small, small
    assert not found, found
