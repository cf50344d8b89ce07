"""``shuyun demo``: a realistic, deterministic Baotou marketplace, built through the services.

Nothing is written into the store directly: every fact comes from the same use cases a
person would trigger, acting as the right role, so the demo is also a walk through the
measures (catalogue review, consent, compliance review, qualification, demand
applications, agreements, metered use, feedback, quality objections, incentives).

Business time runs on a simulated clock that starts about eight months before today and
moves forward as the story unfolds, so usage spans several months, a subscription
expires and a quality deadline is missed. The same ``seed`` gives the same marketplace.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import polars as pl

from domain.errors import DomainError, InvalidState
from domain.identity import SYSTEM, Actor, Role
from domain.licensing import AgreementKind, Subscription, business_date
from domain.parties import credit_code_check_char
from domain.products import DataProduct
from marketplace.bootstrap import Marketplace, build
from marketplace.config import Config
from marketplace.demo.datasets import DATASETS, PROVIDERS, write_dataset
from marketplace.sandbox.recipe import build_version

HASH_KEY = b"shuyun-demo-pseudonym-key"


class SimulatedClock:
    """Business time for the seed: starts in the past, advanced explicitly."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class DemoSummary:
    """What the seed made, for the CLI to print."""

    counts: Counter[str] = field(default_factory=Counter)
    events: int = 0
    personas: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        lines = [f"demo marketplace seeded: {self.events} events"]
        lines += [f"  {name:28} {n}" for name, n in sorted(self.counts.items())]
        lines.append("personas (user id -> role):")
        lines += [f"  {user:28} {role}" for user, role in self.personas.items()]
        return "\n".join(lines)


@dataclass(frozen=True)
class ProductDef:
    """A product of the demo: its sources, recipe, delivery, prices and where its story ends."""

    name: str
    description: str
    category: str
    sources: tuple[str, ...]
    recipe_steps: tuple[dict[str, Any], ...]
    delivery_modes: tuple[str, ...] = ("sandbox_aggregate",)
    cap: str = "2000.00"
    plans: tuple[dict[str, Any], ...] = ()
    state: str = "listed"  # listed | in_review | draft | rejected
    showcase: tuple[str, str, str] | None = None


def _plan(
    plan_id: str, name: str, unit: str, tiers: list[tuple[int | None, str]], stage: str = "trial"
) -> dict[str, Any]:
    return {
        "plan_id": plan_id, "name": name, "billing_unit": unit,
        "tiers": [{"up_to": up_to, "unit_price": price} for up_to, price in tiers],
        "period_months": 1 if unit == "per_period" else None, "stage": stage,
    }


PER_CALL = _plan("per_call", "按次调用", "per_call", [(1000, "2.00"), (10000, "1.20"), (None, "0.80")])
MONTHLY = _plan("monthly", "包月服务", "per_period", [(None, "1200.00")])

PRODUCTS: tuple[ProductDef, ...] = (
    ProductDef(
        "公交客流时空分布 Bus ridership by district and hour",
        "Hourly boardings and alightings per route, stop and district from the bus card system; "
        "for route planning, retail siting and mobility research.",
        "交通出行", ("bus_ridership_hourly",),
        ({"op": "drop", "columns": ["stop_name"]},),
        ("sandbox_aggregate", "row_level_file"), "1500.00", (PER_CALL, MONTHLY),
        showcase=("公交线网优化", "包头智慧出行科技有限公司", "Re-timed 12 routes in 昆都仑区 using hourly boardings."),
    ),
    ProductDef(
        "分区分行业用电趋势 Power use by district and industry",
        "Monthly electricity consumption by district, customer class and industry section; "
        "for energy-service firms, carbon accounting and economic monitoring.",
        "能源", ("power_use_monthly",), (), cap="3000.00", plans=(PER_CALL, MONTHLY),
        showcase=("园区能效诊断", "北方稀土节能服务有限公司", "Found 8% savings in 稀土高新区 industrial parks."),
    ),
    ProductDef(
        "城市用水统计 Water use by district", "Monthly water volumes and accounts by district and user class.",
        "水务", ("water_use_monthly",), (), ("sandbox_aggregate", "row_level_file"), "800.00", (PER_CALL,),
    ),
    ProductDef(
        "饮用水水质监测 Drinking water quality", "Water quality samples per station: pH, turbidity, chlorine.",
        "水务", ("water_quality_samples",), ({"op": "drop", "columns": ["station_id"]},),
        ("sandbox_aggregate",), "800.00", (PER_CALL,),
    ),
    ProductDef(
        "燃气用户发展 Gas connections and use", "Monthly gas connections and volumes by district and user class.",
        "能源", ("gas_use_monthly",), (), cap="1200.00", plans=(PER_CALL,), state="draft",
    ),
    ProductDef(
        "门诊就诊结构（差分隐私） Clinic visits by age band (differential privacy)",
        "Outpatient visits by age band, sex, district and ICD-10 chapter; patient identifiers pseudonymised; "
        "answers carry differential-privacy noise.",
        "医疗健康", ("clinic_visits",),
        ({"op": "hash", "columns": ["patient_hash"]}, {"op": "drop", "columns": ["fee_yuan"]}),
        cap="5000.00", plans=(PER_CALL,),
    ),
    ProductDef(
        "医院床位运行 Hospital bed occupancy", "Daily beds open, occupied, admissions and discharges per ward.",
        "医疗健康", ("hospital_bed_occupancy",), (), cap="1500.00", plans=(PER_CALL,),
    ),
    ProductDef(
        "疫苗接种统计 Vaccination counts", "Weekly doses by district, vaccine and age group.",
        "医疗健康", ("vaccination_counts",), (), cap="1000.00", plans=(PER_CALL,),
    ),
    ProductDef(
        "企业登记画像 Enterprise registrations", "New enterprises by industry section, entity type and district.",
        "市场主体", ("enterprise_registrations",), ({"op": "drop", "columns": ["enterprise_name"]},),
        ("sandbox_aggregate", "row_level_file"), "1500.00", (PER_CALL, MONTHLY),
    ),
    ProductDef(
        "企业信用监管 Enterprise credit and penalties", "Administrative penalties and credit repair by industry.",
        "市场主体", ("enterprise_credit_penalties",), ({"op": "drop", "columns": ["decision_no"]},),
        cap="1000.00", plans=(PER_CALL,), state="rejected",
    ),
    ProductDef(
        "空气质量小时数据 Hourly air quality", "PM2.5, PM10, NO2 and AQI per monitoring station and hour.",
        "生态环境", ("air_quality_hourly",), (), ("sandbox_aggregate", "row_level_file"), "600.00", (PER_CALL,),
    ),
    ProductDef(
        "出租网约车出行 Taxi and ride-hailing trips", "Trips, distance, duration and fares per district and hour.",
        "交通出行", ("taxi_trips_hourly",), (), cap="1500.00", plans=(PER_CALL,),
    ),
    ProductDef(
        "供暖投诉分析 Heating complaints", "Complaints about district heating by type, channel and district.",
        "城市服务", ("heating_complaints",),
        ({"op": "drop", "columns": ["complainant_hash", "ticket_no"]},), cap="800.00", plans=(PER_CALL,),
    ),
    ProductDef(
        "就业与社保景气 Employment and social insurance", "Insured employees, enrolments and separations by industry.",
        "人社", ("social_security_contributions",), (), cap="2000.00", plans=(PER_CALL, MONTHLY),
    ),
    ProductDef(
        "房地产市场月报 Real estate market monthly", "Transactions, floor area and prices by district and usage.",
        "自然资源", ("real_estate_transactions",), (), cap="1500.00", plans=(PER_CALL,), state="in_review",
    ),
)

UNITS: tuple[tuple[str, str, str], ...] = (
    ("包头智慧出行科技有限公司", "company", "mobility"),
    ("北方稀土节能服务有限公司", "company", "energy"),
    ("内蒙古科技大学城市研究院", "research_institute", "research"),
    ("包头医学院公共卫生学院", "research_institute", "health"),
    ("鹿城商业地产咨询有限公司", "company", "real_estate"),
    ("包头市绿色出行促进会", "ngo", "ngo"),
    ("草原云数据服务有限公司", "company", "data"),
    ("包钢集团数字化中心", "company", "energy"),
    ("黄河流域生态研究中心", "research_institute", "environment"),
    ("包头银行风险管理部", "company", "finance"),
    ("稀土高新区企业服务中心", "public_institution", "public"),
    ("九原区社区服务协会", "ngo", "ngo"),
    ("青山区智慧社区科技有限公司", "company", "data"),
    ("东河区老字号商会", "ngo", "commerce"),
    ("内蒙古工业大学交通学院", "research_institute", "research"),
    ("包头供应链金融科技有限公司", "company", "finance"),
    ("白云鄂博矿区安全生产研究所", "research_institute", "environment"),
    ("昆都仑区养老服务中心", "public_institution", "public"),
    ("塞北物流数据有限公司", "company", "mobility"),
    ("达茂旗牧区发展合作社", "ngo", "ngo"),
)

STAFF = {
    "admin.zhao": (Role.OPERATOR_ADMIN, "赵敏 (运营管理员)"),
    "pm.li": (Role.PRODUCT_MANAGER, "李强 (产品经理)"),
    "pm.chen": (Role.PRODUCT_MANAGER, "陈静 (产品经理)"),
    "reviewer.wang": (Role.COMPLIANCE_REVIEWER, "王磊 (合规审核)"),
    "reviewer.liu": (Role.COMPLIANCE_REVIEWER, "刘洋 (合规审核)"),
    "bureau.zhang": (Role.SUPERVISOR, "张华 (市大数据局)"),
}


def credit_code(index: int) -> str:
    body = f"91150{200 + index % 7:03d}MA0{index:05d}"[:17].ljust(17, "0")
    return body + credit_code_check_char(body)


class DemoAlreadySeeded(InvalidState):
    code = "demo_already_seeded"


def seed_demo(config: Config, *, scale: float = 1.0, seed: int = 2023, reset: bool = False) -> DemoSummary:
    """Seed an empty store (``reset`` first empties an SQLite data directory)."""
    if reset:
        if config.uses_postgres:
            raise InvalidState("--reset only empties the embedded SQLite store; drop the PostgreSQL database instead")
        shutil.rmtree(config.data_dir, ignore_errors=True)
    start = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=240)
    clock = SimulatedClock(start)
    mp = build(config, clock=clock)
    try:
        existing = mp.app.recorder.max_notification_id() or 0
        if existing:
            raise DemoAlreadySeeded(f"the store already holds {existing} events; use --reset to start over")
        return _Seeder(mp, clock, random.Random(seed), scale).run()
    finally:
        mp.close()


class _Seeder:
    def __init__(self, mp: Marketplace, clock: SimulatedClock, rng: random.Random, scale: float) -> None:
        self.mp, self.clock, self.rng, self.scale = mp, clock, rng, scale
        self.summary = DemoSummary()
        self.staff = {user: Actor(user, role) for user, (role, _) in STAFF.items()}
        self.admin = self.staff["admin.zhao"]
        self.bureau = self.staff["bureau.zhang"]
        self.providers: dict[str, tuple[UUID, Actor]] = {}
        self.resources: dict[str, UUID] = {}
        self.resource_files: dict[str, Path] = {}
        self.products: dict[str, UUID] = {}
        self.listed: list[UUID] = []
        self.units: list[tuple[UUID, Actor, Actor]] = []
        self.unit_slugs: dict[UUID, str] = {}
        self.subscriptions: list[tuple[UUID, UUID, Actor, UUID]] = []  # (sub, unit, analyst, product)

    def count(self, what: str, n: int = 1) -> None:
        self.summary.counts[what] += n

    def run(self) -> DemoSummary:
        self.enrol_staff()
        self.register_providers()
        self.compile_catalog()
        self.build_products()
        self.register_units()
        self.clock.advance(days=7)
        self.file_demand()
        self.meter_usage()
        self.feedback_and_quality()
        self.demand_board()
        self.publish_incentives()
        self.summary.events = self.mp.app.recorder.max_notification_id() or 0
        self.summary.personas = {u: r.value for u, (r, _) in STAFF.items()}
        for key, (_, clerk) in list(self.providers.items())[:3]:
            self.summary.personas[clerk.user_id] = f"provider_staff of {PROVIDERS[key].name_zh}"
        for _unit_id, admin, analyst in self.units[:3]:
            self.summary.personas[admin.user_id] = "unit_admin"
            self.summary.personas[analyst.user_id] = "unit_analyst"
        return self.summary

    # -- the operator's and the bureau's people ---------------------------------------------
    def enrol_staff(self) -> None:
        for user, (role, name) in STAFF.items():
            by = SYSTEM if role is Role.OPERATOR_ADMIN else self.admin
            self.mp.parties.enrol_staff(by, user_id=user, name=name, roles=[role])
            self.count("staff")

    # -- providers and their catalogue (art. 3, 10-14) -----------------------------------------
    def register_providers(self) -> None:
        used = {spec.provider_key for spec in DATASETS.values()}
        for key, p in PROVIDERS.items():
            if key not in used:
                continue
            pid = self.mp.catalog.register_provider(self.bureau, name=p.name_zh, kind=p.kind,
                                                    contact_email=f"data@{key.replace('_', '-')}.gov.cn")
            clerk_id = f"{key.removeprefix('baotou_')}.clerk"
            self.mp.catalog.add_provider_staff(self.admin, pid, user_id=clerk_id)
            self.providers[key] = (pid, Actor(clerk_id, Role.PROVIDER_STAFF, provider_id=pid))
            self.count("providers")

    def compile_catalog(self) -> None:
        resource_dir = self.mp.config.product_dir / "resources"
        for key, spec in DATASETS.items():
            pid, clerk = self.providers[spec.provider_key]
            rid = self.mp.catalog.compile_resource(
                clerk, provider_id=pid, name=spec.title, description=spec.description, category=spec.category,
                fields=spec.field_specs(), grade=spec.grade, openness=spec.openness,
                update_frequency=spec.update_frequency,
            )
            self.resources[key] = rid
            self.count("catalog resources")
            if spec.openness == "not_open":
                self.mp.catalog.review_resource(self.bureau, rid, approved=False,
                                                reason="不予开放数据，仅登记目录，不得运营 (not open: catalogued only)")
                continue
            self.mp.catalog.review_resource(self.bureau, rid, approved=True, reason="符合目录编制规范")
            df = spec.generate(self.scale, 0)
            path, digest, rows = write_dataset(spec, df, resource_dir)
            self.resource_files[key] = path
            self.mp.catalog.register_resource_version(clerk, rid, content_hash=digest, row_count=rows)
            self.clock.advance(hours=2)

    # -- products (art. 14, 22, 24, 27) --------------------------------------------------------
    def build_products(self) -> None:
        managers = [self.staff["pm.li"], self.staff["pm.chen"]]
        reviewers = [self.staff["reviewer.wang"], self.staff["reviewer.liu"]]
        product_dir = self.mp.config.product_dir  # where the API reads <content_hash>.parquet
        for i, spec in enumerate(PRODUCTS):
            pm, reviewer = managers[i % 2], reviewers[i % 2]
            sources = {key: pl.scan_parquet(self.resource_files[key]) for key in spec.sources}
            recipe = {"source": spec.sources[0], "steps": list(spec.recipe_steps)}
            built = build_version(recipe, sources, product_dir, hash_key=HASH_KEY)
            personal = {c.name for key in spec.sources for c in DATASETS[key].columns if c.personal}
            described = {c.name: c for key in spec.sources for c in DATASETS[key].columns}
            fields = [
                {"name": name, "dtype": described[name].type if name in described else dtype,
                 "description": described[name].description if name in described else name,
                 "personal": name in personal and not any(s.get("op") == "hash" and name in s.get("columns", [])
                                                          for s in spec.recipe_steps)}
                for name, dtype in built.schema
            ]
            product_id = self.mp.products.build_product(
                pm, name=spec.name, description=spec.description, category=spec.category,
                source_ids=[self.resources[k] for k in spec.sources], fields=fields,
                delivery_modes=list(spec.delivery_modes),
            )
            self.products[spec.name] = product_id
            self.count("products")
            if spec.state == "draft":
                continue  # the provider has not yet consented (art. 14)
            for key in spec.sources:
                _, clerk = self.providers[DATASETS[key].provider_key]
                self.mp.catalog.decide_supply(clerk, self.resources[key], product_id=product_id, granted=True,
                                              reason="经市大数据局协调，同意供给 (supply agreed with the bureau)")
            self.mp.products.register_product_version(pm, product_id, content_hash=built.content_hash,
                                                      row_count=built.row_count)
            self.mp.products.set_price_cap(self.admin, product_id, cap=spec.cap, reason="价格主管部门核定上限")
            for plan in spec.plans:
                self.mp.products.set_price_plan(pm, product_id, plan=plan, reason="试运营定价 (trial pricing)")
            self.mp.products.submit_for_review(pm, product_id)
            if spec.state == "in_review":
                continue
            if spec.state == "rejected":
                self.mp.products.review_compliance(
                    reviewer, product_id, approved=False,
                    reason="处罚文书可与公开信息关联还原个案，需进一步泛化 (cases re-identifiable; generalise further)")
                self.count("products rejected in review")
                continue
            self.mp.products.review_compliance(reviewer, product_id, approved=True,
                                               reason="仅沙箱聚合输出，满足最小分组要求 (aggregates only)")
            if "差分隐私" in spec.name:
                self.mp.products.add_expert_opinion(
                    self.bureau, product_id, expert="专家委员会 李教授 (expert committee)",
                    opinion="健康数据须加噪并设置隐私预算", recommendation="approve_with_conditions")
            self.mp.products.list_product(pm, product_id)
            self.listed.append(product_id)
            self.count("products listed")
            if spec.showcase:
                title, unit_name, summary = spec.showcase
                self.mp.products.add_showcase(pm, product_id, title=title, unit_name=unit_name, summary=summary)
            self.clock.advance(hours=5)

    # -- application units (art. 3, 21-22, 34) --------------------------------------------------
    def register_units(self) -> None:
        for i, (name, kind, slug) in enumerate(UNITS):
            admin_user, analyst_user = f"{slug}{i}.admin", f"{slug}{i}.analyst"
            unit_id = self.mp.parties.register_unit(
                Actor(admin_user, Role.APPLICANT), name=name, credit_code=credit_code(i), kind=kind,
                contact_email=f"data{i}@unit{i}.example.cn")
            admin = Actor(admin_user, Role.UNIT_ADMIN, unit_id=unit_id)
            self.unit_slugs[unit_id] = slug
            self.mp.parties.add_member(admin, unit_id, user_id=analyst_user, role="unit_analyst")
            self.count("units")
            if i in (18, 19):
                continue  # awaiting qualification review
            approved = i != 17
            self.mp.parties.qualify_unit(
                self.staff["reviewer.wang"], unit_id, approved=approved,
                reason="营业执照、数据安全能力材料齐全" if approved
                else "缺少数据安全管理制度 (no data security policy)")
            if approved:
                self.units.append((unit_id, admin, Actor(analyst_user, Role.UNIT_ANALYST, unit_id=unit_id)))

    # -- demand applications and subscriptions (art. 6, 21-23) ------------------------------------
    def file_demand(self) -> None:
        purposes = ["industry", "commercial", "public_welfare", "public_governance", "industry"]
        statuses = ["approved"] * 10 + ["submitted", "under_review", "rejected", "withdrawn", "approved", "approved",
                                        "approved"]
        reviewer, decider = self.staff["reviewer.wang"], self.admin
        for i, (unit_id, admin, analyst) in enumerate(self.units):
            status = statuses[i % len(statuses)]
            product_id = self.listed[i % len(self.listed)]
            if self.unit_slugs[unit_id] == "health":  # the public-health school studies clinic visits under DP
                product_id = self.products[next(p.name for p in PRODUCTS if "差分隐私" in p.name)]
            product = self.mp.products.get(DataProduct, product_id)
            today = business_date(self.clock())
            days = 60 if i == 4 else 330
            purpose_class = purposes[i % len(purposes)]
            app_id = self.mp.demand.file_application(
                analyst, unit_id=unit_id,
                scenario=f"利用《{product.name}》开展分区分时段分析，支撑业务决策与公共服务改进 "
                         f"(district and time analysis for planning)",
                purpose="经营分析与规划" if purpose_class in ("industry", "commercial") else "公共服务改进",
                purpose_class=purpose_class,
                scope=[{"product_id": product_id, "fields": list(product.field_names)}],
                period_start=today, period_end=today + timedelta(days=days),
                security_controls=["结果仅在沙箱内使用", "仅限具名分析人员", "不向第三方提供"],
            )
            self.count("demand applications")
            self.count(f"demand applications {status}")
            if status == "submitted":
                continue
            if status == "withdrawn":
                self.mp.demand.withdraw(analyst, app_id, reason="需求调整，改为下季度申请")
                continue
            risk = "high" if product.grade.value in ("general_3", "general_4") else "low"
            self.mp.demand.assess_risk(reviewer, app_id, level=risk,
                                       notes="聚合输出，最小分组与隐私预算可控" if risk == "low"
                                       else "敏感数据，需专家论证")
            if status == "under_review":
                continue
            if risk == "high":
                self.mp.demand.add_expert_opinion(
                    self.bureau, app_id, expert="专家委员会 (expert committee)",
                    opinion="同意，须启用差分隐私与最小分组 10", recommendation="approve_with_conditions")
            approved = status == "approved"
            self.mp.demand.decide_application(
                decider, app_id, approved=approved,
                reason="用途明确、安全措施充分" if approved
                else "应用场景与申请范围不匹配 (scope exceeds the scenario)")
            if not approved:
                continue
            plan_id = "per_call"
            sub_id = self.mp.licensing.create_subscription(
                self.admin, application_id=app_id, product_id=product_id, plan_id=plan_id,
                entitlements={"queries_per_period": 200, "rows_per_period": 50_000,
                              "privacy_budget": 3.0 if risk == "high" else 0.0})
            self.count("subscriptions")
            if i == 9:
                self.count("subscriptions pending signature")
                continue  # agreements not yet signed
            for kind in AgreementKind:
                self.mp.licensing.sign_agreement(admin, sub_id, kind=kind)
                self.mp.licensing.sign_agreement(self.admin, sub_id, kind=kind)
            self.subscriptions.append((sub_id, unit_id, analyst, product_id))
            self.clock.advance(hours=3)

    def meter_usage(self) -> None:
        months = 7
        uses_per_month = max(1, int(6 * self.scale))
        for month in range(months):
            for sub_id, _unit_id, analyst, product_id in self.subscriptions:
                product = self.mp.products.get(DataProduct, product_id)
                fields = list(product.field_names)
                dims = [f for f in fields if f in ("district", "route_no", "industry_section", "age_band")][:1]
                for _ in range(self.rng.randint(1, uses_per_month)):
                    query = {"dimensions": dims, "aggregates": [{"fn": "count", "alias": "n"}]}
                    try:
                        self.mp.usage.record_use(
                            analyst, subscription_id=sub_id, kind="query", product_version=1, query=query,
                            fields=dims, rows_out=self.rng.randint(5, 400),
                            budget_spent=0.1 if product.grade.value == "general_4" else 0.0)
                        self.count("uses metered")
                    except DomainError:
                        self.count("uses refused")
                    self.clock.advance(minutes=self.rng.randint(5, 90))
            if month == 2:
                self.supervise()
            self.clock.advance(days=30)
        due = [s for s, *_ in self.subscriptions]
        expired = self.mp.licensing.expire_due(self.admin, due)
        self.count("subscriptions expired", len(expired))
        # One refused use of each kind the ledger knows, so the console has something to show.
        sub_id, _, analyst, _ = self.subscriptions[0]
        try:
            self.mp.usage.record_use(analyst, subscription_id=sub_id, kind="query", product_version=1,
                                     query={"dimensions": ["secret_column"]}, fields=["secret_column"],
                                     rows_out=0, budget_spent=0.0)
        except DomainError:
            self.count("uses refused")

    def supervise(self) -> None:
        """Art. 34: a unit suspected of reselling results is suspended with its subscriptions."""
        _, unit_id, _, _ = self.subscriptions[-1]
        self.mp.parties.suspend_unit(
            self.admin, unit_id, reason="疑似向第三方转售分析结果，暂停核查 (suspected resale)")
        self.count("units suspended")
        self.subscriptions = [s for s in self.subscriptions if s[1] != unit_id]
        terminated = self.subscriptions.pop(3)
        self.mp.licensing.terminate_subscription(self.admin, terminated[0], reason="应用单位申请提前终止")
        self.count("subscriptions terminated")

    # -- feedback and quality (art. 11, 17, 26) ----------------------------------------------------
    def feedback_and_quality(self) -> None:
        statuses = ["in_production", "in_development", "planned", "in_production"]
        effects = ["significant", "minor", "transformative", "none"]
        active = [s for s in self.subscriptions if self.mp.licensing.get(Subscription, s[0]).is_active]
        for i, (sub_id, _unit_id, analyst, _product_id) in enumerate(active):
            effect = effects[i % 4]
            self.mp.feedback.give_feedback(
                analyst, subscription_id=sub_id, quality_rating=3 + i % 3,
                application_status=statuses[i % 4], effect=effect,
                effect_note="" if effect == "none" else "缩短了规划周期，提升了服务覆盖",
                rating=2 + (i * 7) % 4, text="数据及时、字段说明清楚；希望增加更细的时段。")
            self.count("feedback")
        pm, reviewer = self.staff["pm.li"], self.staff["reviewer.wang"]
        outcomes = ["rectified", "verified", "rejected", "reported", "closed", "overdue"]
        keys = [k for k in DATASETS if k in self.resource_files]
        for i, outcome in enumerate(outcomes):
            key = keys[(i * 3) % len(keys)]
            _, clerk = self.providers[DATASETS[key].provider_key]
            reporter = self.subscriptions[i % len(self.subscriptions)][2]
            issue_id = self.mp.quality.report_issue(
                reporter, resource_id=self.resources[key], dimension=["completeness", "accuracy", "timeliness",
                                                                      "consistency"][i % 4],
                description=f"{DATASETS[key].title_zh} 部分月份记录缺失或数值异常",
                evidence="对比上月数据，九原区记录数下降 40%")
            self.count("quality issues")
            if outcome == "reported":
                continue
            if outcome == "rejected":
                self.mp.quality.reject_issue(pm, issue_id, reason="经核实数据无误，为季节性波动")
                continue
            self.mp.quality.verify_issue(reviewer if i % 2 else pm, issue_id, deadline_days=15)
            if outcome in ("rectified", "closed"):
                self.clock.advance(days=5)
                self.mp.quality.rectify_issue(clerk, issue_id, note="已补录缺失记录并重新发布")
                if outcome == "closed":
                    self.mp.quality.close_issue(pm, issue_id, note="复核通过")
        self.clock.advance(days=20)  # the last verified issues are now past their deadline

    def demand_board(self) -> None:
        posts = [
            ("停车泊位实时占用", "希望获取各区公共停车场实时泊位占用情况，用于导航与停车诱导。",
             "各停车场泊位数、占用数、时间"),
            ("供热管网温度监测", "冬季供热质量评估需要换热站供回水温度。", "换热站、供水温度、回水温度、时间"),
            ("小微企业用电与经营景气", "以用电量衡量小微企业经营景气度，支持普惠金融。", "企业规模、行业、月度用电"),
        ]
        for i, (title, description, wanted) in enumerate(posts):
            unit_id, admin, _ = self.units[i]
            post_id = self.mp.demand.post_demand(admin, unit_id=unit_id, title=title, description=description,
                                                 data_wanted=wanted, purpose_class="industry")
            self.count("demand board posts")
            for _other_id, other_admin, _ in self.units[3 + i: 5 + i]:
                self.mp.demand.second_post(other_admin, post_id)
            if i == 2:
                self.mp.demand.respond_to_post(self.staff["pm.chen"], post_id,
                                               text="可基于《分区分行业用电趋势》满足，已开放订阅",
                                               product_id=self.listed[1])

    def publish_incentives(self) -> None:
        """Art. 25: quarterly contribution evaluations per provider (the scoring itself is a projection)."""
        quarter = (business_date(self.clock()).month - 1) // 3
        period = f"{business_date(self.clock()).year}-Q{max(1, quarter)}"
        for pid, _ in self.providers.values():
            quality = 60 + self.rng.randint(0, 40)
            application = 40 + self.rng.randint(0, 60)
            value = 30 + self.rng.randint(0, 70)
            self.mp.incentives.publish_evaluation(self.admin, provider_id=pid, period=period, components=[
                {"name": "data_quality", "value": quality, "weight": 0.4, "explanation": "质量问题数与整改时效"},
                {"name": "application", "value": application, "weight": 0.35, "explanation": "订阅数与调用量"},
                {"name": "value_realised", "value": value, "weight": 0.25, "explanation": "归属其资源的收入"},
            ])
            self.count("contribution evaluations")


__all__ = ["Decimal", "DemoSummary", "seed_demo"]
