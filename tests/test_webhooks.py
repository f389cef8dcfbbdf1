"""Webhooks: signed events delivered at least once, in order per household, through a
receiver on loopback that fails its first attempts; retries, the delivery log, manual
redelivery, pausing after failing too long, and scope."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.config import Settings
from api.events import webhooks as q
from api.events.addresses import Pinned, Refused, pinned, public_host
from api.events.webhooks import insert_webhook
from tests.conftest import HAC_THANH, THANH_HOA, Accounts, member, submission

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


class Receiver:
    """A plain HTTP server on loopback, in a thread of its own (independent of the test's
    and the app's event loops), that answers 500 to its first ``failures`` requests, then
    200; it keeps every request it got (headers, body, answered status)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes, int]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver.lock:
                    status = 500 if len(receiver.requests) < receiver.failures else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.requests.append((headers, body, status))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted(self) -> list[dict[str, Any]]:
        with self.lock:
            done = [body for _, body, status in self.requests if status == 200]
        return [msgspec.json.decode(body) for body in done]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(failures=3)
    yield found
    found.close()


@pytest.fixture
def app(dsn: str, settings: Settings) -> Litestar:
    # The delivery worker runs, retrying fast so that the test takes seconds.
    return create_app(
        dsn,
        msgspec.structs.replace(
            settings,
            webhook_worker=True,
            webhook_retry_base=0.05,
            webhook_poll=0.1,
            webhook_pause_after=1.0,
            webhook_private_targets=True,  # the receivers listen on loopback
        ),
    )


async def wait_for(check: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def signed(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["x-congdongso-timestamp"]
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["x-congdongso-signature"], f"v1={expected.hexdigest()}")


async def test_events_arrive_signed_in_order_and_none_is_lost(
    client: Client, accounts: Accounts, receiver: Receiver, db: asyncpg.Connection
) -> None:
    admin = await accounts.headers(await accounts.create("admin"))
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    team = await accounts.headers(
        await accounts.create("team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH))
    )
    created = await client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=admin)
    assert created.status_code == 201, created.text
    webhook_id, secret = created.json()["webhook"]["id"], created.json()["secret"]

    homes = []
    for _ in range(2):
        response = await client.post(
            "/api/v1/households", json={"wardCode": HAC_THANH}, headers=team
        )
        homes.append(response.json()["id"])
    chains: dict[str, list[str]] = {home: [] for home in homes}
    previous: dict[str, str | None] = {home: None for home in homes}
    for round_ in range(3):
        items = []
        for home in homes:
            item = submission(home, [member(1980 + round_)], supersedes=previous[home], hh_size=1)
            items.append(item)
            previous[home] = item["id"]
            chains[home].append(item["id"])
        response = await client.post("/api/v1/sync/push", json={"submissions": items}, headers=team)
        assert [r["status"] for r in response.json()["results"]] == ["accepted", "accepted"]
    reviewed = await client.put(
        f"/api/v1/submissions/{previous[homes[0]]}/review",
        json={"status": "approved"},
        headers=official,
    )
    assert reviewed.status_code == 200
    target = await client.put(
        f"/api/v1/targets/{HAC_THANH}/HH_BROADBAND",
        json={"year": 2025, "value": 0.8},
        headers=admin,
    )
    assert target.status_code == 200, target.text
    expected = await db.fetch("SELECT event_id, type FROM outbox ORDER BY change_xid, id")
    assert [row["type"] for row in expected] == ["submission.accepted"] * 6 + [
        "review.decided",
        "target.changed",
    ]

    async def all_delivered() -> bool:
        return {e["id"] for e in receiver.accepted()} >= {str(r["event_id"]) for r in expected}

    await wait_for(all_delivered)
    # Every request is signed; the first three failed and were retried.
    assert [status for _, _, status in receiver.requests[:4]] == [500, 500, 500, 200]
    for headers, body, _ in receiver.requests:
        assert signed(secret, headers, body)
        assert abs(int(headers["x-congdongso-timestamp"]) - time.time()) < 60
        assert headers["x-congdongso-event-id"] == msgspec.json.decode(body)["id"]
    # Duplicates only ever repeat an event id; none is lost; the order is the outbox's.
    received = [e["id"] for e in receiver.accepted()]
    assert received == [str(row["event_id"]) for row in expected]
    failed_ids = {msgspec.json.decode(b)["id"] for _, b, s in receiver.requests if s != 200}
    assert failed_ids <= set(received)
    # Per household, the submissions in the order they were made; never any answers.
    for home, chain in chains.items():
        events = [
            e
            for e in receiver.accepted()
            if e["type"] == "submission.accepted" and e["householdId"] == home
        ]
        assert [e["data"]["submissionId"] for e in events] == chain
        assert all("answers" not in e["data"] and "members" not in e["data"] for e in events)
        assert events[0]["wardCode"] == HAC_THANH
        assert events[0]["provinceCode"] == THANH_HOA

    log = await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=admin)
    attempts = list(reversed(log.json()))
    assert [(a["attempt"], a["delivered"]) for a in attempts[:4]] == [
        (1, False),
        (2, False),
        (3, False),
        (4, True),
    ]
    assert attempts[0]["statusCode"] == 500
    assert sum(a["delivered"] for a in attempts) == len(expected)

    # A manual redelivery sends the same event (same id) again and is logged as manual.
    first_event = str(expected[0]["event_id"])
    again = await client.post(
        f"/api/v1/webhooks/{webhook_id}/events/{first_event}/redeliver", headers=admin
    )
    assert again.status_code == 200, again.text
    assert again.json()["manual"] is True
    assert again.json()["delivered"] is True, (again.json()["error"], again.json()["statusCode"])
    assert receiver.accepted()[-1]["id"] == first_event


async def test_answers_only_for_an_admins_webhook_and_scope(
    client: Client, accounts: Accounts, receiver: Receiver, db: asyncpg.Connection
) -> None:
    receiver.failures = 0
    admin = await accounts.headers(await accounts.create("admin"))
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    other = await accounts.headers(await accounts.create("province_official", "01"))
    refused = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "includeAnswers": True}, headers=province
    )
    assert refused.status_code == 403
    mine = await client.post("/api/v1/webhooks", json={"url": receiver.url}, headers=province)
    assert mine.json()["webhook"]["provinceCode"] == THANH_HOA
    outside = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "provinceCode": THANH_HOA}, headers=other
    )
    assert outside.status_code == 400
    webhook_id = mine.json()["webhook"]["id"]
    assert (
        await client.get(f"/api/v1/webhooks/{webhook_id}/deliveries", headers=other)
    ).status_code == 404
    assert [w["id"] for w in (await client.get("/api/v1/webhooks", headers=other)).json()] == []

    with_answers = await client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "includeAnswers": True, "provinceCode": THANH_HOA},
        headers=admin,
    )
    assert with_answers.status_code == 201
    audited = await db.fetchrow(
        "SELECT detail FROM audit_log WHERE action = 'webhook_created' AND subject_id = $1",
        with_answers.json()["webhook"]["id"],
    )
    assert audited["detail"]["includeAnswers"] is True

    team = await accounts.headers(
        await accounts.create("team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH))
    )
    home = (
        await client.post("/api/v1/households", json={"wardCode": HAC_THANH}, headers=team)
    ).json()["id"]
    pushed = await client.post(
        "/api/v1/sync/push", json={"submissions": [submission(home)]}, headers=team
    )
    assert pushed.json()["results"][0]["status"] == "accepted"

    async def both() -> bool:
        return len(receiver.accepted()) >= 2

    await wait_for(both)
    bodies = receiver.accepted()
    assert {e["id"] for e in bodies} == {bodies[0]["id"]}  # one event, to each webhook
    assert sorted("answers" in e["data"] for e in bodies) == [False, True]
    full = next(e for e in bodies if "answers" in e["data"])
    assert full["data"]["answers"]["hh_broadband"] == "fibre"
    assert len(full["data"]["members"]) == 3


async def test_a_webhook_failing_too_long_is_paused_and_resumed(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    admin = await accounts.headers(await accounts.create("admin"))
    down = Receiver(failures=10**6)
    try:
        created = await client.post("/api/v1/webhooks", json={"url": down.url}, headers=admin)
        webhook_id = created.json()["webhook"]["id"]
        target = await client.put(
            f"/api/v1/targets/{THANH_HOA}/HH_BROADBAND",
            json={"year": 2025, "value": 0.9},
            headers=admin,
        )
        assert target.status_code == 200

        async def paused() -> bool:
            found = await db.fetchval(
                "SELECT paused_at IS NOT NULL FROM webhook WHERE id = $1", uuid.UUID(webhook_id)
            )
            return bool(found)

        await wait_for(paused)
        listed = (await client.get("/api/v1/webhooks", headers=admin)).json()
        assert listed[0]["pausedAt"] is not None
        tries = len(down.requests)
        await asyncio.sleep(0.5)
        assert len(down.requests) == tries  # paused: nothing more is sent
        down.failures = 0
        resumed = await client.post(f"/api/v1/webhooks/{webhook_id}/resume", headers=admin)
        assert resumed.json()["pausedAt"] is None

        async def delivered() -> bool:
            return len(down.accepted()) == 1

        await wait_for(delivered)  # the waiting event was kept, and goes once resumed
        assert down.accepted()[0]["type"] == "target.changed"
    finally:
        down.close()


async def test_a_name_that_resolves_to_this_network_at_delivery_gets_nothing(
    dsn: str, settings: Settings, db: asyncpg.Connection
) -> None:
    """DNS rebinding: a name that resolved to public addresses when its webhook was
    registered and to loopback at delivery. The worker checks the addresses again at every
    attempt, sends nothing, and logs why; registering the same name now is refused."""
    receiver = Receiver(failures=0)
    strict = create_app(
        dsn,
        msgspec.structs.replace(
            settings,
            webhook_worker=True,
            webhook_retry_base=0.05,
            webhook_poll=0.1,
            webhook_pause_after=60.0,
        ),
    )
    try:
        async with AsyncTestClient(app=strict) as client:
            accounts = Accounts(db, client)
            admin_account = await accounts.create("admin")
            admin = await accounts.headers(admin_account)
            url = receiver.url.replace("127.0.0.1", "localhost")
            refused = await client.post("/api/v1/webhooks", json={"url": url}, headers=admin)
            assert refused.status_code == 400
            assert refused.json()["errors"][0]["code"] == "not_public"
            # As the registration stored it when the name still looked public.
            webhook_id = uuid.uuid4()
            await insert_webhook(
                db,
                webhook_id=webhook_id,
                url=url,
                secret="rebinding-test-secret",
                province_id=None,
                include_answers=False,
                created_by=admin_account.id,
            )
            target = await client.put(
                f"/api/v1/targets/{THANH_HOA}/HH_BROADBAND",
                json={"year": 2025, "value": 0.7},
                headers=admin,
            )
            assert target.status_code == 200

            async def tried() -> bool:
                return bool(
                    await db.fetchval(
                        "SELECT count(*) FROM webhook_delivery WHERE webhook_id = $1", webhook_id
                    )
                )

            await wait_for(tried)
            attempt = await db.fetchrow(
                """SELECT delivered, status_code, error FROM webhook_delivery
                   WHERE webhook_id = $1 ORDER BY id LIMIT 1""",
                webhook_id,
            )
            assert not attempt["delivered"]
            assert attempt["status_code"] is None
            assert "non-public" in attempt["error"]
            await asyncio.sleep(0.3)  # retries are refused alike
            assert receiver.requests == []
    finally:
        receiver.close()


async def test_a_delivery_goes_to_the_address_it_checked() -> None:
    """The request is aimed at the resolved address, with the name in Host (and for TLS)."""
    aim = await pinned("https://localhost:8443/hook?x=1", private_ok=True)
    assert isinstance(aim, Pinned)
    assert aim.url in ("https://127.0.0.1:8443/hook?x=1", "https://[::1]:8443/hook?x=1")
    assert aim.host == "localhost:8443"
    assert aim.extensions == {"sni_hostname": "localhost"}
    plain = await pinned("http://127.0.0.1:9/hook", private_ok=True)
    assert isinstance(plain, Pinned)
    assert (plain.extensions, plain.host) == ({}, "127.0.0.1:9")
    assert isinstance(await pinned("http://127.0.0.1:9/hook", private_ok=False), Refused)
    assert isinstance(await pinned("http://10.1.2.3/hook", private_ok=False), Refused)
    assert isinstance(await pinned("http://no-such-host.invalid/hook", private_ok=True), Refused)


async def test_old_events_every_webhook_has_are_pruned_with_their_log(
    client: Client, db: asyncpg.Connection, accounts: Accounts
) -> None:
    """An event goes once it is older than the retention and every webhook it goes to has
    it; a province's webhook keeps its province's events until it has them (paused or
    failing, nothing is lost), and never holds back others'."""
    admin = await accounts.create("admin")
    provinces = {
        r["code"]: r["id"]
        for r in await db.fetch("SELECT code, id FROM area WHERE code = ANY($1)", [THANH_HOA, "01"])
    }
    old, recent = "now() - interval '40 days'", "now() - interval '1 day'"
    events = {}
    for name, province, when in (
        ("hanoi_old", provinces["01"], old),
        ("thanh_hoa_old", provinces[THANH_HOA], old),
        ("hanoi_old_2", provinces["01"], old),
        ("national_old", None, old),
        ("hanoi_recent", provinces["01"], recent),
    ):
        events[name] = await db.fetchrow(
            f"""INSERT INTO outbox (event_id, type, province_id, occurred_at, body)
                VALUES (gen_random_uuid(), 'target.changed', $1, {when}, '{{}}')
                RETURNING id, change_xid::text AS xid""",
            province,
        )
    national, thanh_hoa = uuid.uuid4(), uuid.uuid4()
    for webhook_id, province in ((national, None), (thanh_hoa, provinces[THANH_HOA])):
        await insert_webhook(
            db, webhook_id=webhook_id, url="https://example.org/hook", secret="s",
            province_id=province, include_answers=False, created_by=admin.id,
        )  # fmt: skip
    # The national webhook has everything up to the second Hà Nội event; the province's
    # webhook has nothing yet (paused, say).
    passed = events["hanoi_old_2"]
    await db.execute(
        "UPDATE webhook SET after_xid = $2::text::xid8, after_id = $3 WHERE id = $1",
        national, passed["xid"], passed["id"],
    )  # fmt: skip
    await db.execute(
        "UPDATE webhook SET after_xid = '0', after_id = 0, paused_at = now() WHERE id = $1",
        thanh_hoa,
    )
    await db.execute(
        """INSERT INTO webhook_delivery (webhook_id, outbox_id, event_id, attempt, manual,
               delivered, duration_ms)
           SELECT $1, id, event_id, 1, false, true, 5 FROM outbox WHERE id = $2""",
        national, events["hanoi_old"]["id"],
    )  # fmt: skip

    assert await q.prune(db, keep_days=30) == 2
    left = {r["id"] for r in await db.fetch("SELECT id FROM outbox")}
    assert left == {events[n]["id"] for n in ("thanh_hoa_old", "national_old", "hanoi_recent")}
    assert await db.fetchval("SELECT count(*) FROM webhook_delivery") == 0
    # The worker prunes hourly with the configured retention (and at once when it leads).
    await db.execute("UPDATE webhook SET paused_at = NULL, after_id = $2 WHERE id = $1",
                     thanh_hoa, events["hanoi_recent"]["id"])  # fmt: skip
    await db.execute(
        "UPDATE webhook SET after_xid = $2::text::xid8, after_id = $3 WHERE id = ANY($1)",
        [national, thanh_hoa], events["hanoi_recent"]["xid"], events["hanoi_recent"]["id"],
    )  # fmt: skip
    client.app.state.webhook_worker.next_prune = 0.0  # due now (the worker's own loop)

    async def pruned() -> bool:
        found = {r["id"] for r in await db.fetch("SELECT id FROM outbox")}
        return found == {events["hanoi_recent"]["id"]}  # younger than 30 days

    await wait_for(pruned, 10)


async def test_hosts_that_cannot_be_read_are_not_public() -> None:
    """A bracketed host that is no IPv6 address, or a label IDNA cannot encode: refused as
    not public (a 400 at registration, never a 500)."""
    for url in ("http://[zz]/hook", "http://a..b/hook", "http://xn--/hook", "http://" + "a" * 70):
        assert not await public_host(url), url


async def test_submissions_wake_the_worker_after_their_commit(
    dsn: str, settings: Settings, db: asyncpg.Connection
) -> None:
    """A submission's transaction does not notify (a notifying commit takes a database-wide
    lock); its process wakes the worker after the commit, so the event arrives at once even
    when the worker would poll only every minute."""
    app = create_app(
        dsn,
        msgspec.structs.replace(
            settings, webhook_worker=True, webhook_poll=60.0, webhook_private_targets=True
        ),
    )
    receiver = Receiver(failures=0)
    heard: list[str] = []
    listener = await asyncpg.connect(dsn)
    await listener.add_listener("outbox", lambda *args: heard.append(args[3]))
    try:
        async with AsyncTestClient(app=app) as client:
            # Not the module's app: its worker polls every 0.1 s.
            accounts = Accounts(db, client)
            admin = await accounts.headers(await accounts.create("admin"))
            team = await accounts.headers(
                await accounts.create(
                    "team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH)
                )
            )
            created = await client.post(
                "/api/v1/webhooks", json={"url": receiver.url}, headers=admin
            )
            assert created.status_code == 201, created.text
            home = await client.post(
                "/api/v1/households", json={"wardCode": HAC_THANH}, headers=team
            )
            await wait_for(lambda: _true(app.state.get("pool") is not None))
            await asyncio.sleep(0.5)  # the worker's first round (at its start) is over
            heard.clear()
            item = submission(home.json()["id"])
            single = await client.post("/api/v1/submissions", json=item, headers=team)
            assert single.status_code == 201, single.text
            started = time.monotonic()
            await wait_for(lambda: _true(len(receiver.accepted()) == 1), seconds=5)
            assert time.monotonic() - started < 3  # not the minute's poll
            assert receiver.accepted()[0]["data"]["submissionId"] == item["id"]
            assert heard == [""]  # one wake, after the commit
    finally:
        await listener.close()
        receiver.close()


async def _true(value: bool) -> bool:
    return value
