"""Which learning modules a household needs first, from its current household_digital answers.

Each starter module is weighed by the household's gaps in the skill it teaches; requests for
help (``help_wanted``) weigh in; the reason shown is the gap that weighs most. Modules are
matched by code, so a module added later simply ranks after them (weight 0). A household with
no submission gets a default order that starts with the e-ID every service builds on.

- ``vneid_level2``: members aged ≥ 14 without level-2 VNeID; nobody in the household with
  it puts the module first whatever else is missing;
- ``digital_signature``, ``safe_cashless_payment``, ``public_services_portal``,
  ``cloud_backup``: adults (≥ 15) without a digital signature, an e-payment account, use of
  online public services in 12 months, a cloud account; more when no adult has it;
- ``scam_awareness``: members with a smartphone or e-payment who were never trained in
  digital skills, plus a small weight for every household (everyone is targeted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from api.i18n import N_, translate

VNEID, SCAMS, PORTAL, SIGNATURE, CLOUD, PAYMENT = (
    "vneid_level2",
    "scam_awareness",
    "public_services_portal",
    "digital_signature",
    "cloud_backup",
    "safe_cashless_payment",
)
DEFAULT_ORDER = [VNEID, SCAMS, PORTAL, PAYMENT, SIGNATURE, CLOUD]
HELP_TOPICS = {
    "vneid": VNEID,
    "signature": SIGNATURE,
    "cloud": CLOUD,
    "epay": PAYMENT,
    "eps": PORTAL,
    "scams": SCAMS,
}
EID_AGE, ADULT_AGE = 14, 15

NO_SURVEY = N_("Recommended for every household; a survey visit tailors this list.")
NO_GAP = N_("The household already does this: a refresher.")
VNEID_NOBODY = N_("Nobody aged 14 or over in the household has level-2 VNeID yet.")
VNEID_SOME = N_("Members aged 14 or over without level-2 VNeID: %(count)s.")
HELP_WANTED = N_("Members who asked for help with this: %(count)s.")
NO_SIGNATURE = N_("Adults without a digital signature: %(count)s.")
NO_EPAY = N_("Adults without an e-payment account: %(count)s.")
NO_EPS = N_("Adults who have not used online public services in 12 months: %(count)s.")
NO_CLOUD = N_("Adults without a cloud account: %(count)s.")
UNTRAINED = N_(
    "Members using a smartphone or e-payment without digital-skills training: %(count)s."
)
EVERYONE_SCAMS = N_("Scammers target every household: worth knowing the signs.")


@dataclass
class Weight:
    total: int = 0
    # (contribution, message id, count) of each gap; the biggest is the reason.
    reasons: list[tuple[int, str, int]] = field(default_factory=list)

    def add(self, points: int, message: str, count: int = 0) -> None:
        if points > 0:
            self.total += points
            self.reasons.append((points, message, count))


def weigh(answers: dict[str, Any], members: list[dict[str, Any]], year: int) -> dict[str, Weight]:
    """The weight of each starter module for one household's current answers."""
    weights = {code: Weight() for code in DEFAULT_ORDER}
    people = [m.get("answers", {}) for m in members]

    def age(person: dict[str, Any]) -> int | None:
        born = person.get("birth_year")
        return year - born if isinstance(born, int) else None

    eligible = [p for p in people if (a := age(p)) is not None and a >= EID_AGE]
    adults = [p for p in people if (a := age(p)) is not None and a >= ADULT_AGE]

    without_eid = sum(p.get("vneid") != "level2" for p in eligible if "vneid" in p)
    if eligible and without_eid == len(eligible):
        weights[VNEID].add(1000 + without_eid, VNEID_NOBODY)
    else:
        weights[VNEID].add(10 * without_eid, VNEID_SOME, without_eid)

    for code, key, message in (
        (SIGNATURE, "digital_signature", NO_SIGNATURE),
        (PAYMENT, "epay", NO_EPAY),
        (PORTAL, "eps_used", NO_EPS),
    ):
        missing = sum(p.get(key) is False for p in adults)
        nobody = 20 if adults and missing == len(adults) else 0
        weights[code].add(nobody + 5 * missing, message, missing)
    no_cloud = sum(p.get("cloud_accounts") == 0 for p in adults)
    weights[CLOUD].add(
        (20 if adults and no_cloud == len(adults) else 0) + 5 * no_cloud, NO_CLOUD, no_cloud
    )

    untrained = sum(
        (p.get("smartphone") is True or p.get("epay") is True) and p.get("skills_trained") is False
        for p in people
    )
    weights[SCAMS].add(5 * untrained, UNTRAINED, untrained)
    weights[SCAMS].add(3, EVERYONE_SCAMS)

    asked: dict[str, int] = {}
    for person in people:
        wanted = person.get("help_wanted")
        for topic in set(wanted) if isinstance(wanted, list) else ():
            if topic in HELP_TOPICS:
                asked[HELP_TOPICS[topic]] = asked.get(HELP_TOPICS[topic], 0) + 1
    for code, count in asked.items():
        weights[code].add(25 * count, HELP_WANTED, count)
    return weights


@dataclass(frozen=True)
class Ranked:
    code: str
    weight: int
    reason: str


def rank(
    codes: list[str],
    current: tuple[dict[str, Any], list[dict[str, Any]], int] | None,
    language: str,
) -> list[Ranked]:
    """Order ``codes`` (published modules for residents) for a household.

    ``current`` is the current submission's (answers, members, year of collection), or None.
    """
    position = {code: i for i, code in enumerate(DEFAULT_ORDER)}

    def default_key(code: str) -> tuple[int, str]:
        return (position.get(code, len(DEFAULT_ORDER)), code)

    if current is None:
        ordered = sorted(codes, key=default_key)
        return [Ranked(code, 0, translate(language, NO_SURVEY)) for code in ordered]
    weights = weigh(*current)
    ranked = []
    for code in sorted(codes, key=lambda c: (-weights.get(c, Weight()).total, *default_key(c))):
        weight = weights.get(code, Weight())
        if weight.reasons:
            _, message, count = max(weight.reasons, key=lambda r: r[0])
            reason = translate(language, message, {"count": count} if "%(" in message else None)
        else:
            reason = translate(language, NO_GAP)
        ranked.append(Ranked(code, weight.total, reason))
    return ranked
