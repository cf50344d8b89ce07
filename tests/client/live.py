"""A live demo marketplace for the SDK, notebook and workspace tests.

The demo is seeded through the services (``shuyun demo``), topped up with the
subscriptions the tutorials and the failure cases need (a research institute licensed
for the differential-privacy clinic product; throwaway units whose subscription is
expired, suspended, or has a tiny privacy budget), and served by a real API process on
loopback (``tests/api/conftest.start_server``). Workspaces are prepared with the real
launcher code, so the SDK reads exactly the files ``shuyun workspace launch`` writes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.identity import Actor, Role  # noqa: E402
from domain.licensing import AgreementKind, Subscription, business_date  # noqa: E402
from domain.parties import ApplicationUnit  # noqa: E402
from domain.products import DataProduct  # noqa: E402
from domain.usage import UsageLedger, period_of  # noqa: E402
from marketplace.bootstrap import Marketplace, build  # noqa: E402
from marketplace.config import Config  # noqa: E402
from marketplace.demo.seed import UNITS, credit_code, seed_demo  # noqa: E402
from marketplace.workspace import Workspace, prepare_workspace  # noqa: E402
from tests.api.conftest import start_server, stop_server  # noqa: E402

ADMIN = Actor("admin.zhao", Role.OPERATOR_ADMIN)
REVIEWER = Actor("reviewer.wang", Role.COMPLIANCE_REVIEWER)
BUREAU = Actor("bureau.zhang", Role.SUPERVISOR)

#: demo unit indexes (marketplace.demo.seed.UNITS) and who they are in the tutorials
MOBILITY, ENERGY, RESEARCH = 0, 1, 2
EXPIRING, SUSPENDING, SMALL_BUDGET = 12, 13, 14


def unit_id(index: int) -> UUID:
    return ApplicationUnit.create_id(credit_code(index))


def subscribe(
    mp: Marketplace, index: int, product_id: UUID, *, budget: float = 3.0, queries: int = 200, days: int = 300,
    at: datetime | None = None,
) -> UUID:
    """An approved application and an active, signed subscription of demo unit ``index`` to a product."""
    uid = unit_id(index)
    unit = mp.parties.get(ApplicationUnit, uid)
    analyst = next(u for u, r in unit.members.items() if r is Role.UNIT_ANALYST)
    admin = next(u for u, r in unit.members.items() if r is Role.UNIT_ADMIN)
    product = mp.products.get(DataProduct, product_id)
    today = business_date(at or mp.demand.clock())
    app_id = mp.demand.file_application(
        Actor(analyst, Role.UNIT_ANALYST, unit_id=uid), unit_id=uid,
        scenario="按年龄段与区县分析就诊结构，支撑公共卫生研究 (research on care use by age band and district)",
        purpose="公共卫生研究 (public health research)", purpose_class="public_welfare",
        scope=[{"product_id": product_id, "fields": list(product.field_names)}],
        period_start=today, period_end=today + timedelta(days=days),
        security_controls=["结果仅在沙箱内使用", "仅限具名分析人员", "不向第三方提供"],
    )
    mp.demand.assess_risk(REVIEWER, app_id, level="high", notes="敏感数据，需专家论证与差分隐私")
    mp.demand.add_expert_opinion(BUREAU, app_id, expert="专家委员会 (expert committee)",
                                 opinion="同意，须启用差分隐私", recommendation="approve_with_conditions")
    mp.demand.decide_application(ADMIN, app_id, approved=True, reason="用途明确、安全措施充分")
    sub_id = mp.licensing.create_subscription(
        ADMIN, application_id=app_id, product_id=product_id, plan_id="per_call",
        entitlements={"queries_per_period": queries, "rows_per_period": 100_000, "privacy_budget": budget},
    )
    for kind in AgreementKind:
        mp.licensing.sign_agreement(Actor(admin, Role.UNIT_ADMIN, unit_id=uid), sub_id, kind=kind)
        mp.licensing.sign_agreement(ADMIN, sub_id, kind=kind)
    return sub_id


@dataclass
class LiveDemo:
    config: Config
    url: str
    mp: Marketplace
    products: dict[str, UUID]
    subscriptions: dict[str, UUID] = field(default_factory=dict)
    workspaces: dict[str, Workspace] = field(default_factory=dict)

    def workspace(self, key: str, index: int) -> Workspace:
        if key not in self.workspaces:
            self.workspaces[key] = prepare_workspace(self.mp, unit=credit_code(index), api_url=self.url)
        return self.workspaces[key]

    def ledger_events(self, subscription_id: UUID) -> list[Any]:
        ledger_id = UsageLedger.create_id(subscription_id, period_of(datetime.now(UTC)))
        if not self.mp.usage.exists(ledger_id):
            return []
        return list(self.mp.app.events.get(ledger_id))

    def usage_today(self, subscription_id: UUID) -> dict[str, Any]:
        """Today's row of the usage read model (H8's ``views.usage_daily``) after catching up with the log."""
        from projections import views
        from projections.runner import Runner
        from projections.usage import UsageProjection, business_day

        with Runner.open(self.config, [UsageProjection()]) as runner:
            runner.catch_up()
            frame = views.usage_daily(runner, subscription_id=str(subscription_id))
        today = business_day(datetime.now(UTC).isoformat())
        rows = frame.filter(frame["day"].cast(str) == today).to_dicts()
        return rows[0] if rows else {"queries": 0, "workspace_events": 0, "refusals": 0, "budget_spent": 0.0}

    def unit_subscriptions(self, index: int) -> list[UUID]:
        return list(self.mp.parties.get(ApplicationUnit, unit_id(index)).subscription_ids)


def find_products(mp: Marketplace) -> dict[str, UUID]:
    """Demo product ids by short name, from the subscriptions of the demo's units."""
    wanted = {"bus": "Bus ridership", "power": "Power use", "clinic": "Clinic visits"}
    found: dict[str, UUID] = {}
    for i in range(len(UNITS)):
        unit = mp.parties.get(ApplicationUnit, unit_id(i))
        for sid in unit.subscription_ids:
            product = mp.products.get(DataProduct, mp.licensing.get(Subscription, sid).product_id)
            for key, fragment in wanted.items():
                if fragment in product.name:
                    found[key] = product.id
    return found


def live_demo(data_dir: Path) -> Iterator[LiveDemo]:
    """Seed, top up, serve; yields the running demo and stops the API afterwards."""
    config = Config(data_dir=data_dir)
    seed_demo(config)
    mp = build(config)
    products = find_products(mp)
    subs = {
        "research_clinic": subscribe(mp, RESEARCH, products["clinic"], budget=3.0),
        "expiring_bus": subscribe(mp, EXPIRING, products["bus"], budget=0.0, days=30),
        "suspending_power": subscribe(mp, SUSPENDING, products["power"], budget=0.0),
        "small_budget_clinic": subscribe(mp, SMALL_BUDGET, products["clinic"], budget=0.5),
    }
    proc, url = start_server(config)
    try:
        yield LiveDemo(config=config, url=url, mp=mp, products=products, subscriptions=subs)
    finally:
        stop_server(proc)
        mp.close()


def expire(config: Config, subscription_id: UUID) -> None:
    """Expire a subscription: the operator's job run on a day after its term."""
    probe = build(config)
    try:
        term_end = probe.licensing.get(Subscription, subscription_id).term_end
    finally:
        probe.close()
    later = datetime(term_end.year, term_end.month, term_end.day, 12, tzinfo=UTC) + timedelta(days=2)
    mp = build(config, clock=lambda: later)
    try:
        assert mp.licensing.expire_due(ADMIN, [subscription_id]) == [subscription_id]
    finally:
        mp.close()
