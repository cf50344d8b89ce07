"""The demand, credentials and staff read models against the services that made them, on SQLite and PostgreSQL.

Each test drives the real services (``tests.scenario`` builders, or the demo seeder),
lets a runner catch up in small batches and reads ``projections.views``: demand
applications with every art. 21 field through assessment, expert opinion, decision and
withdrawal (art. 6, 21-22); the demand board's interest, seconds and answers (art.
19-20); API clients issued then revoked, and never a secret or its hash anywhere in the
read models (art. 23); the staff roster and providers' rosters behind the development
sign-in (art. 15-16). Rebuilding from zero in small or uneven batches gives exactly the
tables the incremental catch-up built.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from projection_helpers import World, open_world

from domain.catalog import Provider
from domain.credentials import ApiClient
from domain.demand import DemandApplication, DemandPost
from domain.identity import Role
from domain.parties import StaffMember
from domain.products import DataProduct
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from marketplace.demo.seed import seed_demo
from projections import credentials as credentials_rm
from projections import demand as demand_rm
from projections import views
from projections.db import memory, read_frame
from projections.log import EventLog
from projections.registry import all_projections
from projections.runner import Runner
from streamlit_app.ui.reads import Persona, ReadSide
from tests.scenario import (
    Unit,
    active_subscription,
    approved_application,
    listed_product,
    provider,
    qualified_unit,
)

T0 = datetime(2025, 4, 7, 2, 0, tzinfo=UTC)
MINE = ("demand", "credentials", "units")


@pytest.fixture
def world(config: Config) -> Iterator[World]:
    with open_world(config, T0, batch_size=7) as w:
        yield w


def other_unit(w: World, n: int) -> Unit:
    return qualified_unit(w.mp, w.people, name=f"第{n}家数据应用单位有限公司", code_body=f"91150200MA0N9X{n:03d}",
                          admin_user=f"u{n}-admin", analyst_user=f"u{n}-analyst")


def file(w: World, unit: Unit, product: UUID, *, fields: list[str] | None = None, days: int = 180) -> UUID:
    today = w.clock.now.date()
    return w.mp.demand.file_application(
        unit.analyst, unit_id=unit.id, scenario="Plan bus depots by district demand at peak hours",
        purpose="depot planning", purpose_class="public_governance",
        scope=[{"product_id": product, "fields": fields or ["district", "month"]}],
        period_start=today, period_end=today + timedelta(days=days),
        security_controls=["results stay in the sandbox", "two named analysts", "no export of rows"],
    )


def expected_application(a: DemandApplication) -> dict[str, Any]:
    """What the read model must say of an application: the aggregate's own state, as plain values."""
    return {
        "application_id": str(a.id), "unit_id": str(a.unit_id), "status": a.status.value, "scenario": a.scenario,
        "purpose": a.purpose, "purpose_class": a.purpose_class.value,
        "scope": [{"product_id": str(i.product_id), "fields": list(i.fields)} for i in a.scope],
        "product_ids": [str(i.product_id) for i in a.scope],
        "period_start": a.period_start, "period_end": a.period_end, "security_controls": list(a.security_controls),
        "filed_on": a.filed_on, "filed_by": a.filed_by, "risk_level": a.risk_level.value if a.risk_level else None,
        "risk_notes": a.risk_notes, "expert_opinion_count": len(a.expert_opinions),
        "expert_opinions": [(o.expert, o.opinion, o.recommendation.value, o.recorded_by) for o in a.expert_opinions],
        "decided_by": a.decided_by or None, "decision_reason": a.decision_reason,
    }


def shown_application(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: row[k] for k in (
        "application_id", "unit_id", "status", "scenario", "purpose", "purpose_class", "scope", "product_ids",
        "period_start", "period_end", "security_controls", "filed_on", "filed_by", "risk_level", "risk_notes",
        "expert_opinion_count", "decided_by", "decision_reason")}
    shown["expert_opinions"] = [(o["expert"], o["opinion"], o["recommendation"], o["recorded_by"])
                                for o in row["expert_opinions"]]
    return shown


def expected_post(p: DemandPost) -> dict[str, Any]:
    return {
        "post_id": str(p.id), "unit_id": str(p.unit_id), "title": p.title, "description": p.description,
        "data_wanted": p.data_wanted, "purpose_class": p.purpose_class.value, "status": p.status.value,
        "interest": p.interest, "seconded_by": [str(u) for u in p.seconded_by], "posted_by": p.posted_by,
        "response_count": len(p.responses), "close_reason": p.close_reason,
        "responses": [(r.text, None if r.product_id is None else str(r.product_id), r.responded_by)
                      for r in p.responses],
    }


def shown_post(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: row[k] for k in ("post_id", "unit_id", "title", "description", "data_wanted", "purpose_class",
                                 "status", "interest", "seconded_by", "posted_by", "response_count", "close_reason")}
    shown["responses"] = [(r["text"], r["product_id"], r["responded_by"]) for r in row["responses"]]
    return shown


def legacy_personas(mp: Marketplace, staff_ids: list[str], provider_ids: list[str]) -> list[Persona]:
    """The staff and provider personas as the stopgap built them, from the aggregates themselves."""
    members = sorted((mp.parties.get(StaffMember, s) for s in staff_ids), key=lambda s: s.user_id)
    out = [Persona(s.user_id, role.value, f"{s.user_id} — {s.name}, {role.value}") for s in members for role in s.roles]
    providers = sorted((mp.catalog.get(Provider, p) for p in provider_ids), key=lambda p: p.name)
    for p in providers:
        out += [Persona(u, "provider_staff", f"{u} — provider staff of {p.name}", provider_id=str(p.id))
                for u in p.staff]
    return out


def mine_tables() -> list[Any]:
    return [t for p in all_projections() if p.name in MINE for t in p.tables]


def assert_rebuild_equals_incremental(config: Config, mp: Marketplace, runner: Runner) -> None:
    """Rebuild from zero in tiny batches, and catch up in uneven chunks elsewhere: the same rows."""
    runner.catch_up()
    tables = mine_tables()
    before = {t.name: read_frame(runner.db, t) for t in tables}
    assert sum(f.height for f in before.values()) > 0
    with Runner.open(config, app=mp.app, batch_size=3) as small:
        small.rebuild(list(MINE))
        assert small.lag(list(MINE)) == dict.fromkeys(MINE, 0)
        for table in tables:
            assert_frame_equal(read_frame(small.db, table), before[table.name], check_row_order=True)
    log = EventLog.open(mp.app, config)
    chunked = Runner(log, memory(), [p for p in all_projections() if p.name in MINE], batch_size=5, closing=[log])
    with chunked:
        for limit in (1, 4, 2, 9, 1):
            chunked.catch_up(limit=limit)
        chunked.catch_up()
        for table in tables:
            assert_frame_equal(read_frame(chunked.db, table), before[table.name], check_row_order=True)
        chunked.db.close()


# -- demand applications (art. 6, 21-22) ----------------------------------------------------------------------


def test_art21_22_an_application_shows_every_field_filed_its_assessment_opinion_and_a_decision_by_another(
    world: World,
) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    unit = qualified_unit(w.mp, w.people)
    app = file(w, unit, product)
    w.caught_up()
    row = views.demand_application(w.runner, app).row(0, named=True)
    assert (row["status"], row["risk_level"], row["decided_by"], row["expert_opinions"]) == (
        "submitted", None, None, [])
    assert row["unit_name"] == "包头智慧出行有限公司"

    w.clock.advance(hours=3)
    w.mp.demand.assess_risk(w.people.reviewer, app, level="high", notes="fine-grained district and month")
    w.mp.demand.add_expert_opinion(w.people.supervisor, app, expert="Prof. Zhao, expert committee",
                                   opinion="acceptable with minimum group size 10",
                                   recommendation="approve_with_conditions")
    w.caught_up()
    row = views.demand_application(w.runner, app).row(0, named=True)
    assert (row["status"], row["risk_level"], row["assessed_by"]) == ("under_review", "high", "reviewer")
    assert row["assessed_at"] >= row["filed_at"]

    w.mp.demand.decide_application(w.people.admin, app, approved=True, reason="controls adequate with the opinion")
    w.caught_up()
    row = views.demand_application(w.runner, app).row(0, named=True)
    aggregate = w.mp.demand.get(DemandApplication, app)
    assert shown_application(row) == expected_application(aggregate)
    assert row["status"] == "approved" and row["decided_by"] == "admin" != row["filed_by"] == "unit-analyst"
    assert row["scope"] == [{"product_id": str(product), "fields": ["district", "month"]}]
    assert row["security_controls"] == ["results stay in the sandbox", "two named analysts", "no export of rows"]
    assert (row["period_start"], row["period_end"]) == (date(2025, 4, 7), date(2025, 10, 4))
    # Event times are the store's (when recorded), in the order the service acted.
    assert row["filed_at"] <= row["assessed_at"] <= row["expert_opinions"][0]["recorded_at"] <= row["decided_at"]
    assert row["updated_at"] == row["decided_at"]


def test_art22_rejected_and_withdrawn_applications_filter_by_unit_and_status_newest_first(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    unit, other = qualified_unit(w.mp, w.people), other_unit(w, 1)
    approved = approved_application(w.mp, w.people, unit, product)
    w.clock.advance(days=1)
    rejected = file(w, unit, product)
    w.mp.demand.assess_risk(w.people.reviewer, rejected, level="medium", notes="purpose too broad")
    w.mp.demand.decide_application(w.people.admin, rejected, approved=False, reason="narrow the purpose")
    w.clock.advance(days=1)
    withdrawn = file(w, unit, product)
    w.mp.demand.withdraw(unit.admin, withdrawn, reason="moved to next quarter")
    w.clock.advance(days=1)
    pending = file(w, other, product, fields=["district"])
    w.caught_up()

    everything = views.demand_applications(w.runner)
    assert everything["application_id"].to_list() == [str(a) for a in (pending, withdrawn, rejected, approved)]
    for row in everything.iter_rows(named=True):
        assert shown_application(row) == expected_application(w.mp.demand.get(DemandApplication, row["application_id"]))
    assert everything["status"].to_list() == ["submitted", "withdrawn", "rejected", "approved"]
    gone = views.demand_application(w.runner, withdrawn).row(0, named=True)
    assert (gone["withdrawn_by"], gone["decision_reason"], gone["decided_by"]) == (
        "unit-admin", "moved to next quarter", None)
    mine = views.demand_applications(w.runner, unit_id=unit.id)
    assert mine["application_id"].to_list() == [str(a) for a in (withdrawn, rejected, approved)]
    assert views.demand_applications(w.runner, unit_id=other.id, statuses=["submitted"])["application_id"].to_list() \
        == [str(pending)]
    assert views.demand_applications(w.runner, statuses="rejected")["decision_reason"].to_list() == [
        "narrow the purpose"]
    assert views.demand_applications(w.runner, statuses=[]).is_empty()
    assert views.demand_application(w.runner, UUID(int=7)).is_empty()


# -- the demand board (art. 19-20) -------------------------------------------------------------------------------


def test_art19_20_board_counts_interest_per_unit_keeps_every_answer_and_closes(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    poster, second, third = qualified_unit(w.mp, w.people), other_unit(w, 1), other_unit(w, 2)
    gps = w.mp.demand.post_demand(poster.analyst, unit_id=poster.id, title="Bus GPS traces",
                                  description="Second-by-second traces of every bus", data_wanted="lat, lon, time",
                                  purpose_class="industry")
    w.clock.advance(minutes=5)
    parking = w.mp.demand.post_demand(second.admin, unit_id=second.id, title="Parking occupancy",
                                      description="Occupancy of public car parks", data_wanted="lot, hour, share",
                                      purpose_class="public_welfare")
    w.caught_up()
    board = views.demand_posts(w.runner)
    assert board["post_id"].to_list() == [str(parking), str(gps)]  # equal interest: newest first
    assert board["interest"].to_list() == [1, 1] and board["status"].to_list() == ["open", "open"]

    w.mp.demand.second_post(third.admin, gps)
    w.mp.demand.second_post(second.analyst, gps)
    w.mp.demand.respond_to_post(w.people.product_manager, gps, text="District aggregates are listed",
                                product_id=product)
    w.mp.demand.respond_to_post(w.people.admin, gps, text="Raw traces are not operable (personal)")
    w.mp.demand.close_post(poster.admin, gps, reason="aggregates will do")
    w.caught_up()
    board = views.demand_posts(w.runner)
    assert board["post_id"].to_list() == [str(gps), str(parking)]  # most needed first
    for row in board.iter_rows(named=True):
        assert shown_post(row) == expected_post(w.mp.demand.get(DemandPost, row["post_id"]))
    row = board.row(0, named=True)
    assert row["interest"] == 3 and row["seconded_by"] == [str(third.id), str(second.id)]
    assert [r["text"] for r in row["responses"]] == ["District aggregates are listed",
                                                     "Raw traces are not operable (personal)"]
    assert [r["product_id"] for r in row["responses"]] == [str(product), None]
    assert (row["status"], row["closed_by"], row["close_reason"], row["unit_name"]) == (
        "closed", "unit-admin", "aggregates will do", "包头智慧出行有限公司")


# -- API clients (art. 23, 34) ------------------------------------------------------------------------------------


def test_art23_clients_are_listed_per_unit_issued_then_revoked_and_no_read_model_holds_a_secret(
    world: World,
) -> None:
    w = world
    unit, other = qualified_unit(w.mp, w.people), other_unit(w, 1)
    product = listed_product(w.mp, w.people)
    sid = active_subscription(w.mp, w.people, unit=unit, product_id=product)
    other_sid = active_subscription(w.mp, w.people, unit=other, product_id=product)
    notebook = w.mp.credentials.issue_client(unit.admin, unit_id=unit.id, user_id=unit.analyst.user_id,
                                             label="analysis notebook", subscription_ids=[sid])
    w.clock.advance(minutes=1)
    script = w.mp.credentials.issue_client(unit.admin, unit_id=unit.id, user_id=unit.admin.user_id,
                                           label="nightly script", subscription_ids=[sid])
    theirs = w.mp.credentials.issue_client(other.admin, unit_id=other.id, user_id=other.analyst.user_id,
                                           label="their notebook", subscription_ids=[other_sid])
    w.caught_up()
    assert views.api_clients(w.runner, unit.id)["status"].to_list() == ["active", "active"]

    w.clock.advance(minutes=1)
    w.mp.credentials.revoke_client(unit.admin, notebook.client_id, reason="laptop lost")
    client = w.mp.credentials.get(ApiClient, script.client_id)
    w.mp.credentials.revoke_token(client, jti="token-1", expires_at=int((w.clock.now + timedelta(hours=1)).timestamp()))
    w.caught_up()
    clients = views.api_clients(w.runner, unit.id)
    assert clients["client_id"].to_list() == [str(notebook.client_id), str(script.client_id)]
    for row in clients.iter_rows(named=True):
        c = w.mp.credentials.get(ApiClient, row["client_id"])
        assert (row["unit_id"], row["user_id"], row["label"], row["subscription_ids"], row["status"],
                row["status_reason"]) == (str(c.unit_id), c.user_id, c.label, [str(s) for s in c.subscription_ids],
                                          c.status.value, c.status_reason)
    revoked = clients.row(0, named=True)
    assert (revoked["status"], revoked["revoked_by"], revoked["issued_by"]) == ("revoked", "unit-admin", "unit-admin")
    assert revoked["issued_at"] < revoked["revoked_at"] == revoked["updated_at"]
    assert clients.row(1, named=True)["tokens_revoked"] == 1
    assert views.api_clients(w.runner, other.id)["client_id"].to_list() == [str(theirs.client_id)]
    assert views.api_clients(w.runner, unit.id, status="active")["label"].to_list() == ["nightly script"]

    # No secret and no hash: not as a column, not as a value (nor a piece of one), in ANY read model.
    assert set(credentials_rm.CLIENTS.column_names) == {
        "client_id", "unit_id", "user_id", "label", "subscription_ids", "status", "status_reason", "issued_by",
        "issued_at", "revoked_by", "revoked_at", "tokens_revoked", "updated_at"}
    secrets = [notebook.client_secret, script.client_secret, theirs.client_secret]
    for issued in (notebook, script, theirs):
        _, _, _, _, salt, digest = w.mp.credentials.get(ApiClient, issued.client_id).secret_hash.split("$")
        secrets += [salt, digest[:16]]
    for projection in all_projections():
        for table in projection.tables:
            # (content hashes of data versions are fine: only the client's secret and its hash are not)
            assert not any("secret" in column for column in table.column_names), table.name
            frame = read_frame(w.runner.db, table)
            for column, dtype in frame.schema.items():
                if dtype == pl.String:
                    values = frame[column].drop_nulls().to_list()
                    assert not any(s in v for s in secrets for v in values), f"{table.name}.{column}"
    # Nor does the audit trail show them, though it reads what each event changed from the log itself.
    issued = views.audit(w.runner, event_name="Issued", aggregate_type="ApiClient", limit=100)
    assert issued.height == 3 and issued["summary"].str.contains("label=").all()
    trail = views.audit(w.runner, limit=100_000)
    assert trail["attributes"].null_count() == 0 and trail["summary"].null_count() == 0
    assert not any(s in v for s in secrets for v in trail["attributes"].to_list() + trail["summary"].to_list())
    assert not trail["attributes"].str.contains("secret_hash").any()


# -- staff and providers' rosters (art. 15-16) ------------------------------------------------------------------


def test_art15_staff_roles_and_provider_rosters_follow_grants_revocations_and_removals(world: World) -> None:
    w = world
    w.mp.parties.grant_role(w.people.admin, user_id="reviewer", role="product_manager")
    w.mp.parties.revoke_role(w.people.admin, user_id="pm", role="product_manager")
    water, _ = provider(w.mp, w.people)
    power, _ = provider(w.mp, w.people, name="Baotou Power Supply", kind="power", staff_user="power-clerk")
    w.mp.catalog.add_provider_staff(w.people.admin, water, user_id="water-deputy")
    w.mp.catalog.add_provider_staff(w.people.admin, power, user_id="power-deputy")
    w.mp.catalog.remove_provider_staff(w.people.admin, power, user_id="power-clerk")
    w.caught_up()

    roster = views.staff(w.runner)
    assert roster.select("user_id", "roles").rows() == [
        ("admin", ["operator_admin"]), ("bureau", ["supervisor"]), ("pm", []),
        ("reviewer", ["compliance_reviewer", "product_manager"])]
    for row in roster.iter_rows(named=True):
        member = w.mp.parties.get(StaffMember, row["staff_id"])
        assert (row["user_id"], row["name"], row["roles"]) == (member.user_id, member.name,
                                                               [r.value for r in member.roles])
    rosters = views.provider_staff(w.runner)
    assert rosters.select("provider_name", "user_id").rows() == [
        ("Baotou Power Supply", "power-deputy"), ("Baotou Water Supply Company", "water-clerk"),
        ("Baotou Water Supply Company", "water-deputy")]
    assert views.provider_staff(w.runner, water)["user_id"].to_list() == w.mp.catalog.get(Provider, water).staff

    personas = ReadSide(w.mp, w.runner).personas()
    staff_ids = [StaffMember.create_id(u) for u in ("admin", "pm", "reviewer", "bureau")]
    legacy = legacy_personas(w.mp, [str(s) for s in staff_ids], [str(water), str(power)])
    assert [p for p in personas if p.role not in ("unit_admin", "unit_analyst")] == legacy
    assert Persona("reviewer", Role.PRODUCT_MANAGER.value, "reviewer — Reviewer, product_manager") in personas


# -- the demo, and rebuilding ----------------------------------------------------------------------------------


def test_every_demo_application_post_and_staff_member_is_what_its_aggregate_says(config: Config) -> None:
    summary = seed_demo(config, scale=0.05)
    assert summary.counts["demand applications withdrawn"] >= 1 and summary.counts["demand board posts"] >= 1
    mp = build(config)
    try:
        with Runner.open(config, app=mp.app, batch_size=11) as runner:
            runner.catch_up()
            audit = views.audit(runner, limit=100_000)

            def ids(kind: str) -> list[str]:
                return sorted(set(audit.filter(pl.col("aggregate_type") == kind)["aggregate_id"].to_list()))

            applications = views.demand_applications(runner)
            assert sorted(applications["application_id"].to_list()) == ids("DemandApplication")
            assert applications.height == summary.counts["demand applications"]
            for row in applications.iter_rows(named=True):
                aggregate = mp.demand.get(DemandApplication, row["application_id"])
                assert shown_application(row) == expected_application(aggregate)
            decided = applications.filter(pl.col("decided_by").is_not_null())
            assert not decided.is_empty() and (decided["decided_by"] != decided["filed_by"]).all()
            assert applications.filter(pl.col("expert_opinion_count") > 0).height >= 1
            posts = views.demand_posts(runner)
            assert sorted(posts["post_id"].to_list()) == ids("DemandPost")
            for row in posts.iter_rows(named=True):
                assert shown_post(row) == expected_post(mp.demand.get(DemandPost, row["post_id"]))
            assert posts["interest"].to_list() == sorted(posts["interest"].to_list(), reverse=True)
            personas = ReadSide(mp, runner).personas()
            legacy = legacy_personas(mp, ids("StaffMember"), ids("Provider"))
            assert [p for p in personas if p.role not in ("unit_admin", "unit_analyst")] == legacy
            assert {p.user_id for p in personas} >= set(summary.personas)
            assert_rebuild_equals_incremental(config, mp, runner)
    finally:
        mp.close()


def test_rebuild_from_zero_in_small_batches_equals_the_incremental_read_models(world: World) -> None:
    w = world
    product = listed_product(w.mp, w.people)
    unit, other = qualified_unit(w.mp, w.people), other_unit(w, 1)
    fields = list(w.mp.products.get(DataProduct, product).field_names)
    approved_application(w.mp, w.people, unit, product, risk="high", fields=fields)
    withdrawn = file(w, other, product)
    w.caught_up()  # part of the log projected incrementally, the rest below
    w.mp.demand.withdraw(other.analyst, withdrawn, reason="duplicate")
    sid = active_subscription(w.mp, w.people, unit=unit, product_id=product)
    issued = w.mp.credentials.issue_client(unit.admin, unit_id=unit.id, user_id=unit.analyst.user_id, label="nb",
                                           subscription_ids=[sid])
    w.mp.credentials.revoke_client(w.people.admin, issued.client_id, reason="misuse reported")
    post = w.mp.demand.post_demand(unit.admin, unit_id=unit.id, title="Taxi trips", description="Trips by hour",
                                   data_wanted="origin, destination, hour", purpose_class="industry")
    w.mp.demand.second_post(other.admin, post)
    w.mp.demand.respond_to_post(w.people.product_manager, post, text="Planned for Q3")
    w.mp.parties.revoke_role(w.people.admin, user_id="pm", role="product_manager")
    assert_rebuild_equals_incremental(w.config, w.mp, w.runner)
    tables = {t.name for t in mine_tables()}
    assert {t.name for t in demand_rm.DemandProjection.tables} <= tables
    assert views.api_clients(w.runner, unit.id)["revoked_by"].to_list() == ["admin"]
