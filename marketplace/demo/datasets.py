"""Deterministic synthetic public data of Baotou (包头), for demos, tests and benchmarks.

Every dataset is a function ``(scale, seed) -> polars.DataFrame`` registered in
``DATASETS`` with a ``DatasetSpec`` that says what a catalog entry would say about it
(provider, grade, openness, update frequency, and per column a description, a type and
whether it is personal information, art. 12 and 35). The spec is the contract: a
generator's frame is checked against it and cast to its types before anyone sees it.

Why synthetic and deterministic: no real public data may be copied into a repository,
yet rules about grades, personal fields and aggregation only mean something on data of
realistic shape (weekday and hour patterns, heating season, district sizes). The same
``(scale, seed)`` must always give the same bytes so that content hashes registered as
catalog versions stay valid and benchmarks compare like with like. Randomness therefore
comes only from ``random.Random`` seeded with a string (stable across processes and
Python versions, independent of ``PYTHONHASHSEED``), never from the clock.

``scale=1.0`` gives roughly 1k-30k rows per dataset; rows grow linearly with ``scale``
(longer series or more events), so benchmarks can ask for millions of rows.

District sizes, prices and magnitudes are plausible approximations for synthesis, not
official statistics.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import random
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from domain.errors import InvalidInput
from domain.parties import CREDIT_CODE_ALPHABET, credit_code_check_char

# --------------------------------------------------------------------------------------
# Vocabulary shared with the catalog (kept as plain strings: this module describes files,
# the catalog context owns the enums and parses these values when data is registered).
# --------------------------------------------------------------------------------------
COLUMN_TYPES: tuple[str, ...] = ("string", "integer", "float", "boolean", "date", "datetime", "category")
GRADES: tuple[str, ...] = ("general_1", "general_2", "general_3", "general_4", "important")
OPENNESS: tuple[str, ...] = ("unconditional", "conditional", "not_open")
UPDATE_FREQUENCIES: tuple[str, ...] = (
    "realtime", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly", "once",
)
#: Largest scale accepted: keeps every generated date inside the calendar.
MAX_SCALE = 1000.0

#: The ten county-level divisions of Baotou (incl. the rare-earth high-tech zone).
DISTRICTS: tuple[str, ...] = (
    "昆都仑区", "青山区", "东河区", "九原区", "石拐区", "白云鄂博矿区", "稀土高新区",
    "土默特右旗", "固阳县", "达尔罕茂明安联合旗",
)
#: Approximate resident population in units of 10,000 (weights for synthesis only).
POPULATION_10K: Mapping[str, float] = {
    "昆都仑区": 80.0, "青山区": 52.0, "东河区": 60.0, "九原区": 30.0, "石拐区": 3.0,
    "白云鄂博矿区": 2.5, "稀土高新区": 20.0, "土默特右旗": 28.0, "固阳县": 13.0,
    "达尔罕茂明安联合旗": 10.0,
}
URBAN_DISTRICTS: frozenset[str] = frozenset({"昆都仑区", "青山区", "东河区", "九原区", "稀土高新区"})
#: Administrative division codes (GB/T 2260), used inside unified social credit codes.
DIVISION_CODES: Mapping[str, str] = {
    "东河区": "150202", "昆都仑区": "150203", "青山区": "150204", "石拐区": "150205",
    "白云鄂博矿区": "150206", "九原区": "150207", "土默特右旗": "150221", "固阳县": "150222",
    "达尔罕茂明安联合旗": "150223", "稀土高新区": "150271",
}
#: Sections of the national industry classification GB/T 4754-2017.
INDUSTRY_SECTIONS: Mapping[str, str] = {
    "A": "农、林、牧、渔业", "B": "采矿业", "C": "制造业",
    "D": "电力、热力、燃气及水生产和供应业", "E": "建筑业", "F": "批发和零售业",
    "G": "交通运输、仓储和邮政业", "H": "住宿和餐饮业", "I": "信息传输、软件和信息技术服务业",
    "J": "金融业", "K": "房地产业", "L": "租赁和商务服务业", "M": "科学研究和技术服务业",
    "N": "水利、环境和公共设施管理业", "O": "居民服务、修理和其他服务业", "P": "教育",
    "Q": "卫生和社会工作", "R": "文化、体育和娱乐业", "S": "公共管理、社会保障和社会组织",
    "T": "国际组织",
}
SECTIONS: tuple[str, ...] = tuple(INDUSTRY_SECTIONS)
#: Sections present in a prefecture-level city's economy (no international organisations).
LOCAL_SECTIONS: tuple[str, ...] = SECTIONS[:-1]

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------------------
# Specs
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    """What a catalog field says about one column (art. 12 grading, art. 35 personal info)."""

    name: str
    type: str
    description: str
    personal: bool = False
    nullable: bool = False
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not _NAME.match(self.name):
            raise InvalidInput("name", f"column name {self.name!r} must be snake_case ASCII")
        if self.type not in COLUMN_TYPES:
            raise InvalidInput("type", f"column {self.name}: must be one of {', '.join(COLUMN_TYPES)}")
        if not self.description.strip():
            raise InvalidInput("description", f"column {self.name}: a description is required")
        if (self.type == "category") != bool(self.values):
            raise InvalidInput("values", f"column {self.name}: category columns, and only they, list values")
        if len(set(self.values)) != len(self.values):
            raise InvalidInput("values", f"column {self.name}: values repeat")

    @property
    def dtype(self) -> pl.DataType:
        """The Polars type of this column; categories are Enums so their encoding is fixed."""
        if self.type == "category":
            return pl.Enum(list(self.values))
        return _DTYPES[self.type]


_DTYPES: Mapping[str, pl.DataType] = {
    "string": pl.String(), "integer": pl.Int64(), "float": pl.Float64(), "boolean": pl.Boolean(),
    "date": pl.Date(), "datetime": pl.Datetime("us"),
}


@dataclass(frozen=True)
class DemoProvider:
    """A public management or service organisation of art. 3 that holds demo data."""

    key: str
    name_zh: str
    name_en: str
    kind: str


@dataclass(frozen=True)
class DatasetSpec:
    """A synthetic dataset and the catalog facts about it."""

    key: str
    title_zh: str
    title_en: str
    provider_key: str
    provider_kind: str
    category: str
    grade: str
    openness: str
    update_frequency: str
    description: str
    columns: tuple[ColumnSpec, ...]
    generator: Callable[[float, int], pl.DataFrame] = field(repr=False, compare=False)

    @property
    def title(self) -> str:
        return f"{self.title_zh} ({self.title_en})"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def personal_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.personal)

    @property
    def provider(self) -> DemoProvider:
        return PROVIDERS[self.provider_key]

    def column(self, name: str) -> ColumnSpec:
        for column in self.columns:
            if column.name == name:
                return column
        raise InvalidInput("column", f"dataset {self.key} has no column {name!r}")

    def schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    def generate(self, scale: float = 1.0, seed: int = 0) -> pl.DataFrame:
        """The frame for ``(scale, seed)``: always the same rows in the same order."""
        return self.generator(scale, seed)

    def column_types(self) -> dict[str, str]:
        """Column name -> catalog field type, the schema a catalog version is checked against."""
        return {c.name: c.type for c in self.columns}

    def field_specs(self) -> list[dict[str, Any]]:
        """The columns as catalog field arguments (name, dtype, description, personal)."""
        return [
            {"name": c.name, "dtype": c.type, "description": c.description, "personal": c.personal}
            for c in self.columns
        ]


PROVIDERS: dict[str, DemoProvider] = {
    p.key: p
    for p in (
        DemoProvider("baotou_bus", "包头市公共交通集团有限公司", "Baotou Public Transport Group", "public_transport"),
        DemoProvider("baotou_transport", "包头市交通运输局", "Baotou Transport Bureau", "public_transport"),
        DemoProvider("baotou_power", "内蒙古电力(集团)有限责任公司包头供电分公司",
                     "Inner Mongolia Power Group, Baotou Supply Branch", "power"),
        DemoProvider("baotou_water", "包头市水务(集团)有限公司", "Baotou Water Group", "water"),
        DemoProvider("baotou_gas", "包头市燃气有限公司", "Baotou Gas Company", "gas"),
        DemoProvider("baotou_health", "包头市卫生健康委员会", "Baotou Health Commission", "health"),
        DemoProvider("baotou_cdc", "包头市疾病预防控制中心", "Baotou Center for Disease Control", "health"),
        DemoProvider("baotou_amr", "包头市市场监督管理局", "Baotou Administration for Market Regulation",
                     "market_regulation"),
        DemoProvider("baotou_natural_resources", "包头市自然资源局(不动产登记中心)",
                     "Baotou Natural Resources Bureau (Real Estate Registration)", "natural_resources"),
        DemoProvider("baotou_hrss", "包头市人力资源和社会保障局", "Baotou Human Resources and Social Security Bureau",
                     "human_resources_social_security"),
        DemoProvider("baotou_environment", "包头市生态环境局", "Baotou Ecology and Environment Bureau", "other"),
        DemoProvider("baotou_heating", "包头市热力(集团)有限责任公司", "Baotou Heating Group", "other"),
    )
}

#: Every dataset by key, in registration order.
DATASETS: dict[str, DatasetSpec] = {}

RawGenerator = Callable[[float, int], pl.DataFrame]


def _dataset(
    *, title_zh: str, title_en: str, provider: str, category: str, grade: str, openness: str,
    update_frequency: str, description: str, columns: Sequence[ColumnSpec],
) -> Callable[[RawGenerator], RawGenerator]:
    """Register a generator; the registered function checks its arguments and its output."""
    if provider not in PROVIDERS:
        raise InvalidInput("provider", f"unknown demo provider {provider!r}")
    if grade not in GRADES:
        raise InvalidInput("grade", f"must be one of {', '.join(GRADES)}")
    if openness not in OPENNESS:
        raise InvalidInput("openness", f"must be one of {', '.join(OPENNESS)}")
    if update_frequency not in UPDATE_FREQUENCIES:
        raise InvalidInput("update_frequency", f"must be one of {', '.join(UPDATE_FREQUENCIES)}")

    def register(raw: RawGenerator) -> RawGenerator:
        key = raw.__name__
        if key in DATASETS:
            raise InvalidInput("key", f"dataset {key} registered twice")

        @functools.wraps(raw)
        def generate(scale: float, seed: int) -> pl.DataFrame:
            check_arguments(scale, seed)
            return conform(spec, raw(float(scale), int(seed)))

        spec = DatasetSpec(
            key=key, title_zh=title_zh, title_en=title_en, provider_key=provider,
            provider_kind=PROVIDERS[provider].kind, category=category, grade=grade, openness=openness,
            update_frequency=update_frequency, description=description, columns=tuple(columns),
            generator=generate,
        )
        names = spec.column_names
        if len(set(names)) != len(names):
            raise InvalidInput("columns", f"dataset {key}: column names repeat")
        DATASETS[key] = spec
        return generate

    return register


def check_arguments(scale: float, seed: int) -> None:
    if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(scale):
        raise InvalidInput("scale", f"must be a finite number, got {scale!r}")
    if not 0 < scale <= MAX_SCALE:
        raise InvalidInput("scale", f"must be > 0 and <= {MAX_SCALE:g}, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("seed", f"must be a non-negative integer, got {seed!r}")


def check_frame(spec: DatasetSpec, df: pl.DataFrame) -> None:
    """Raise ``InvalidInput`` unless ``df`` has exactly the spec's columns, types and nulls."""
    missing = [n for n in spec.column_names if n not in df.columns]
    extra = [n for n in df.columns if n not in spec.column_names]
    if missing or extra:
        raise InvalidInput(
            "df", f"{spec.key}: columns differ from the spec (missing {missing}, undeclared {extra})"
        )
    if tuple(df.columns) != spec.column_names:
        raise InvalidInput("df", f"{spec.key}: columns must be in the spec's order {list(spec.column_names)}")
    for column in spec.columns:
        actual = df.schema[column.name]
        if actual != column.dtype:
            raise InvalidInput(f"df.{column.name}", f"{spec.key}: is {actual}, the spec says {column.dtype}")
        if not column.nullable and df[column.name].null_count():
            raise InvalidInput(f"df.{column.name}", f"{spec.key}: has nulls but is not nullable")


def conform(spec: DatasetSpec, df: pl.DataFrame) -> pl.DataFrame:
    """Cast a generator's frame to the spec's types and column order, then check it."""
    missing = [n for n in spec.column_names if n not in df.columns]
    extra = [n for n in df.columns if n not in spec.column_names]
    if missing or extra:
        raise InvalidInput(
            "df", f"{spec.key}: columns differ from the spec (missing {missing}, undeclared {extra})"
        )
    columns = []
    for column in spec.columns:
        try:
            columns.append(df.get_column(column.name).cast(column.dtype, strict=True))
        except (pl.exceptions.PolarsError, TypeError, ValueError) as error:
            problem = str(error).splitlines()[0]
            raise InvalidInput(f"df.{column.name}", f"{spec.key}: cannot be read as {column.type}: {problem}") from None
    out = pl.DataFrame(columns)
    check_frame(spec, out)
    return out


# --------------------------------------------------------------------------------------
# Content-addressed Parquet
# --------------------------------------------------------------------------------------
def parquet_bytes(df: pl.DataFrame) -> bytes:
    """Parquet with every writer option pinned, so equal frames give equal bytes."""
    buffer = io.BytesIO()
    df.write_parquet(
        buffer, compression="zstd", compression_level=3, statistics=True,
        row_group_size=262_144, data_page_size=1_048_576,
    )
    return buffer.getvalue()


def write_dataset(spec: DatasetSpec, df: pl.DataFrame, root: Path) -> tuple[Path, str, int]:
    """Write ``df`` as ``root/<sha256>.parquet`` and return (path, sha256, row_count).

    The name is the hash of the file's bytes, so a catalog version that records the
    hash names exactly one file and a file can be checked against its record. Writing
    goes to a temporary file in the same directory and is renamed into place, so a
    reader never sees a half-written file; writing the same content again is a no-op.
    """
    check_frame(spec, df)
    data = parquet_bytes(df)
    digest = hashlib.sha256(data).hexdigest()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{digest}.parquet"
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == digest:
        return path, digest, df.height
    fd, tmp = tempfile.mkstemp(prefix=f".{digest[:12]}-", suffix=".tmp", dir=root)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path, digest, df.height


def generate(key: str, scale: float = 1.0, seed: int = 0) -> pl.DataFrame:
    """The dataset ``key`` at ``scale`` and ``seed``."""
    if key not in DATASETS:
        raise InvalidInput("key", f"no demo dataset {key!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key].generate(scale, seed)


# --------------------------------------------------------------------------------------
# Helpers for the generators
# --------------------------------------------------------------------------------------
def _rng(key: str, seed: int) -> random.Random:
    # A str seed is hashed with SHA-512 by random.Random: stable everywhere.
    return random.Random(f"shuyun-demo/{key}/{seed}")


def _n(base: int, scale: float) -> int:
    return max(1, round(base * scale))


def _noise(rng: random.Random, n: int, sigma: float) -> list[float]:
    """Multiplicative log-normal noise with median 1."""
    gauss, exp = rng.gauss, math.exp
    return [exp(gauss(0.0, sigma)) for _ in range(n)]


def _pseudonym(kind: str, seed: int, index: int) -> str:
    """A pseudonymised id (salted SHA-256, 16 hex characters); still personal information."""
    return hashlib.sha256(f"shuyun-demo/{kind}/{seed}/{index}".encode()).hexdigest()[:16]


def _day_series(base_days: int, scale: float) -> list[date]:
    """Consecutive days; at scale 1 they end on 2024-12-31, larger scales run on."""
    start = date(2025, 1, 1) - timedelta(days=base_days)
    return [start + timedelta(days=i) for i in range(_n(base_days, scale))]


def _month_series(base_months: int, scale: float) -> list[date]:
    """First days of consecutive months; at scale 1 they end with 2024-12."""
    first = 2025 * 12 - base_months
    return [date((first + i) // 12, (first + i) % 12 + 1, 1) for i in range(_n(base_months, scale))]


def _years_since(day: date, origin: date) -> float:
    return (day - origin).days / 365.25


def _in_heating_season(day: date) -> bool:
    """Baotou's heating season runs from 15 October to 15 April."""
    return (day.month, day.day) >= (10, 15) or (day.month, day.day) <= (4, 15)


def _weighted_district(rng: random.Random, k: int, urban_bias: float = 1.0) -> list[str]:
    weights = [POPULATION_10K[d] * (urban_bias if d in URBAN_DISTRICTS else 1.0) for d in DISTRICTS]
    return rng.choices(DISTRICTS, weights=weights, k=k)


def _credit_code(rng: random.Random, type_code: str, district: str) -> str:
    """A well-formed unified social credit code (GB 32100-2015) for a synthetic entity."""
    body = "".join(rng.choice(CREDIT_CODE_ALPHABET[:10] + "ABCDEFGHJKLMNPQRTUWXY") for _ in range(9))
    first17 = f"{type_code}{DIVISION_CODES[district]}{body}"
    return first17 + credit_code_check_char(first17)


def _category(name: str, description: str, values: Sequence[str], *, nullable: bool = False) -> ColumnSpec:
    return ColumnSpec(name, "category", description, values=tuple(values), nullable=nullable)


def _district_column() -> ColumnSpec:
    return _category("district", "county-level division of Baotou (区/旗/县, incl. 稀土高新区)", DISTRICTS)


def _section_column(nullable: bool = False, description: str | None = None) -> ColumnSpec:
    return _category(
        "industry_section",
        description or "section letter of the national industry classification GB/T 4754-2017",
        SECTIONS, nullable=nullable,
    )


# --------------------------------------------------------------------------------------
# 1. Public transport: hourly bus ridership by route and stop
# --------------------------------------------------------------------------------------
_BUS_STOPS: Mapping[str, tuple[str, ...]] = {
    "昆都仑区": ("阿尔丁广场", "包钢医院", "昆区政府", "十八街坊", "劳动公园", "昆河公园", "包钢总厂", "友谊大街"),
    "青山区": ("青山宾馆", "八一公园", "青山区政府", "幸福路口", "青年路北口", "富强路", "一机厂", "北重集团"),
    "东河区": ("东河区政府", "南门外大街", "财神庙", "东站", "和平路", "巴彦塔拉大街", "转龙藏", "东河桥"),
    "九原区": ("九原区政府", "赛汗塔拉", "建华南路", "包头职业技术学院", "新都市区"),
    "稀土高新区": ("稀土高新区管委会", "万达广场", "黄河大街", "滨河新区", "稀土大街"),
    "石拐区": ("石拐区政府", "大发", "五当召"),
    "土默特右旗": ("萨拉齐", "土右旗政府", "美岱召"),
}
_BUS_ROUTES: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("1路", ("东河区", "青山区", "昆都仑区"), 95.0),
    ("2路", ("昆都仑区", "青山区"), 80.0),
    ("5路", ("东河区", "九原区"), 60.0),
    ("6路", ("昆都仑区", "稀土高新区"), 70.0),
    ("7路", ("青山区", "东河区"), 55.0),
    ("10路", ("昆都仑区", "九原区"), 50.0),
    ("12路", ("稀土高新区", "九原区", "青山区"), 45.0),
    ("15路", ("昆都仑区",), 65.0),
    ("21路", ("青山区",), 40.0),
    ("26路", ("东河区",), 35.0),
    ("35路", ("东河区", "石拐区"), 12.0),
    ("40路", ("九原区", "稀土高新区"), 30.0),
    ("50路", ("东河区", "土默特右旗"), 10.0),
    ("60路", ("昆都仑区", "青山区", "东河区"), 75.0),
)
_BUS_HOUR_PROFILE: Mapping[int, float] = {
    5: 0.2, 6: 0.6, 7: 1.6, 8: 1.4, 9: 0.9, 10: 0.8, 11: 0.85, 12: 0.9, 13: 0.8,
    14: 0.75, 15: 0.8, 16: 1.0, 17: 1.5, 18: 1.3, 19: 0.8, 20: 0.55, 21: 0.35, 22: 0.2,
}
STOPS_PER_ROUTE = 6


def _bus_stop_frame(rng: random.Random) -> pl.DataFrame:
    rows: dict[str, list[Any]] = {"route_no": [], "route_rank": [], "stop_seq": [], "stop_name": [],
                                  "district": [], "stop_base": []}
    for rank, (route, districts, base) in enumerate(_BUS_ROUTES):
        for j in range(STOPS_PER_ROUTE):
            district = districts[j * len(districts) // STOPS_PER_ROUTE]
            pool = _BUS_STOPS[district]
            rows["route_no"].append(route)
            rows["route_rank"].append(rank)
            rows["stop_seq"].append(j + 1)
            rows["stop_name"].append(pool[(rank + j) % len(pool)])
            rows["district"].append(district)
            rows["stop_base"].append(base * rng.uniform(0.5, 1.6))
    return pl.DataFrame(rows)


@_dataset(
    title_zh="公交线路站点小时客流", title_en="Hourly bus ridership by route and stop",
    provider="baotou_bus", category="交通出行/公交客流", grade="general_1", openness="unconditional",
    update_frequency="daily",
    description="Boardings and alightings per bus stop and service hour from IC-card and QR-code "
                "validations of 包头公交 (aggregated, no passenger identifiers).",
    columns=(
        ColumnSpec("service_hour", "datetime", "start of the service hour, local time (UTC+8)"),
        _category("route_no", "bus route number", [r[0] for r in _BUS_ROUTES]),
        ColumnSpec("stop_seq", "integer", "position of the stop along the route, from 1"),
        ColumnSpec("stop_name", "string", "stop name"),
        _district_column(),
        ColumnSpec("boardings", "integer", "passengers boarding at the stop in the hour"),
        ColumnSpec("alightings", "integer", "passengers alighting at the stop in the hour"),
        ColumnSpec("is_weekend", "boolean", "Saturday or Sunday"),
    ),
)
def bus_ridership_hourly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("bus_ridership_hourly", seed)
    stops = _bus_stop_frame(rng)
    hours = pl.DataFrame({"hour": list(_BUS_HOUR_PROFILE), "hour_factor": list(_BUS_HOUR_PROFILE.values())})
    days = pl.DataFrame({"day": _day_series(14, scale)})
    grid = days.join(stops, how="cross").join(hours, how="cross").sort(
        ["day", "hour", "route_rank", "stop_seq"], maintain_order=True
    )
    weekday = pl.col("day").dt.weekday()
    month = pl.col("day").dt.month()
    expected = (
        pl.col("stop_base") * pl.col("hour_factor")
        * pl.when(weekday >= 6).then(0.72).otherwise(1.0)
        * pl.when(month.is_in([1, 2, 12])).then(0.9).when(month.is_in([7, 8])).then(0.93).otherwise(1.0)
    )
    grid = grid.with_columns(
        pl.Series("n1", _noise(rng, grid.height, 0.3)), pl.Series("n2", _noise(rng, grid.height, 0.3))
    )
    return grid.select(
        service_hour=pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=pl.col("hour")),
        route_no=pl.col("route_no"),
        stop_seq=pl.col("stop_seq"),
        stop_name=pl.col("stop_name"),
        district=pl.col("district"),
        boardings=(expected * pl.col("n1")).round(0).cast(pl.Int64),
        alightings=(expected * 0.96 * pl.col("n2")).round(0).cast(pl.Int64),
        is_weekend=weekday >= 6,
    )


# --------------------------------------------------------------------------------------
# 2. Power: monthly household and enterprise use by district and industry
# --------------------------------------------------------------------------------------
#: Monthly MWh of one district of weight 1 per section (enterprise use).
_POWER_SECTION_MWH: Mapping[str, float] = {
    "A": 800, "B": 6000, "C": 40000, "D": 12000, "E": 3000, "F": 6000, "G": 5000, "H": 3000,
    "I": 1500, "J": 800, "K": 2500, "L": 1200, "M": 900, "N": 1500, "O": 800, "P": 2500,
    "Q": 1800, "R": 500, "S": 2000,
}
#: Heavy industry is concentrated: steel in 昆都仑, aluminium and rare earth in the east and south.
_HEAVY_INDUSTRY: Mapping[str, Mapping[str, float]] = {
    "C": {"昆都仑区": 30.0, "东河区": 12.0, "九原区": 14.0, "稀土高新区": 16.0, "土默特右旗": 10.0,
          "青山区": 6.0, "石拐区": 1.0, "白云鄂博矿区": 1.0, "固阳县": 2.0, "达尔罕茂明安联合旗": 2.0},
    "B": {"白云鄂博矿区": 25.0, "达尔罕茂明安联合旗": 12.0, "固阳县": 8.0, "石拐区": 6.0,
          "昆都仑区": 0.5, "青山区": 0.2, "东河区": 0.3, "九原区": 1.0, "稀土高新区": 0.5, "土默特右旗": 2.0},
}


@_dataset(
    title_zh="分区分行业月度用电量", title_en="Monthly power use by district, customer class and industry",
    provider="baotou_power", category="能源/电力", grade="general_2", openness="conditional",
    update_frequency="monthly",
    description="Electricity sold per month to households and enterprises, by district and by "
                "GB/T 4754 section for enterprises.",
    columns=(
        ColumnSpec("month", "date", "first day of the billing month"),
        _district_column(),
        _category("customer_class", "household (居民) or enterprise (非居民)", ("household", "enterprise")),
        _section_column(nullable=True, description="GB/T 4754-2017 section of the enterprises; null for households"),
        ColumnSpec("accounts", "integer", "number of billed electricity accounts"),
        ColumnSpec("consumption_mwh", "float", "electricity sold in the month, MWh"),
    ),
)
def power_use_monthly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("power_use_monthly", seed)
    months = _month_series(36, scale)
    origin = months[0]
    rows: dict[str, list[Any]] = {k: [] for k in ("month", "district", "customer_class", "industry_section",
                                                   "accounts", "consumption_mwh")}
    for month in months:
        growth = 1.04 ** _years_since(month, origin)
        season = {12: 1.25, 1: 1.28, 2: 1.18, 7: 1.1, 8: 1.12}.get(month.month, 1.0)
        for district in DISTRICTS:
            weight = POPULATION_10K[district] / 30.0
            households = POPULATION_10K[district] * 10_000 / 2.6
            accounts = round(households * (1 + 0.01 * _years_since(month, origin)) * rng.uniform(0.995, 1.005))
            rows["month"].append(month)
            rows["district"].append(district)
            rows["customer_class"].append("household")
            rows["industry_section"].append(None)
            rows["accounts"].append(accounts)
            rows["consumption_mwh"].append(round(accounts * 0.16 * season * math.exp(rng.gauss(0, 0.04)), 1))
            for section in LOCAL_SECTIONS:
                factor = _HEAVY_INDUSTRY.get(section, {}).get(district, weight)
                mwh = _POWER_SECTION_MWH[section] * factor * growth * math.exp(rng.gauss(0, 0.06))
                if section in "OPQRS":
                    mwh *= 1.15 if month.month in (12, 1, 2) else 1.0
                rows["month"].append(month)
                rows["district"].append(district)
                rows["customer_class"].append("enterprise")
                rows["industry_section"].append(section)
                rows["accounts"].append(max(1, round(factor * 40 * rng.uniform(0.9, 1.1))))
                rows["consumption_mwh"].append(round(mwh, 1))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 3. Water: monthly use by district and user class
# --------------------------------------------------------------------------------------
_WATER_CLASSES: tuple[str, ...] = ("residential", "commercial", "industrial", "public_service")


@_dataset(
    title_zh="分区月度供水量", title_en="Monthly water supplied by district and user class",
    provider="baotou_water", category="公用事业/供水", grade="general_1", openness="unconditional",
    update_frequency="monthly",
    description="Metered water sold per month by district and user class.",
    columns=(
        ColumnSpec("month", "date", "first day of the billing month"),
        _district_column(),
        _category("user_class", "user class of the water accounts", _WATER_CLASSES),
        ColumnSpec("accounts", "integer", "number of billed water accounts"),
        ColumnSpec("volume_m3", "float", "metered water sold in the month, cubic metres"),
    ),
)
def water_use_monthly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("water_use_monthly", seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("month", "district", "user_class", "accounts", "volume_m3")}
    for month in _month_series(60, scale):
        season = {6: 1.12, 7: 1.18, 8: 1.15, 12: 0.93, 1: 0.9, 2: 0.92}.get(month.month, 1.0)
        for district in DISTRICTS:
            people = POPULATION_10K[district] * 10_000
            coverage = 0.97 if district in URBAN_DISTRICTS else 0.75
            industry = _HEAVY_INDUSTRY["C"][district] + _HEAVY_INDUSTRY["B"][district]
            plan = {
                "residential": (people / 2.6 * coverage, people * coverage * 3.0),
                "commercial": (people / 60, people * 0.7),
                "industrial": (industry * 30, industry * 45_000),
                "public_service": (people / 400, people * 0.35),
            }
            for user_class in _WATER_CLASSES:
                accounts, volume = plan[user_class]
                rows["month"].append(month)
                rows["district"].append(district)
                rows["user_class"].append(user_class)
                rows["accounts"].append(max(1, round(accounts * rng.uniform(0.99, 1.01))))
                rows["volume_m3"].append(round(volume * season * math.exp(rng.gauss(0, 0.05)), 0))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 4. Water: drinking water quality samples (GB 5749-2022 indicators)
# --------------------------------------------------------------------------------------
_WQ_STATION_TYPES: tuple[str, ...] = ("waterworks_outlet", "pipe_network", "secondary_supply")
_WQ_STATIONS_PER_DISTRICT: Mapping[str, int] = {
    "昆都仑区": 4, "青山区": 3, "东河区": 4, "九原区": 3, "稀土高新区": 3, "石拐区": 1,
    "白云鄂博矿区": 1, "土默特右旗": 2, "固阳县": 2, "达尔罕茂明安联合旗": 1,
}


def _meets_gb5749(station_type: str, ph: float, turbidity: float, chlorine: float, coliform: bool) -> bool:
    chlorine_ok = 0.3 <= chlorine <= 2.0 if station_type == "waterworks_outlet" else chlorine >= 0.05
    return 6.5 <= ph <= 8.5 and turbidity <= 1.0 and chlorine_ok and not coliform


@_dataset(
    title_zh="生活饮用水水质抽检", title_en="Drinking water quality samples",
    provider="baotou_water", category="公用事业/水质", grade="general_1", openness="unconditional",
    update_frequency="daily",
    description="Twice-daily samples at waterworks outlets, pipe network and secondary supply points: "
                "pH, turbidity, free residual chlorine, total coliforms; compliance with GB 5749-2022.",
    columns=(
        ColumnSpec("sampled_at", "datetime", "sampling time, local time (UTC+8)"),
        ColumnSpec("station_id", "string", "sampling point code"),
        _category("station_type", "kind of sampling point", _WQ_STATION_TYPES),
        _district_column(),
        ColumnSpec("ph", "float", "pH value (limit 6.5-8.5)"),
        ColumnSpec("turbidity_ntu", "float", "turbidity in NTU (limit 1)"),
        ColumnSpec("residual_chlorine_mg_l", "float",
                   "free residual chlorine, mg/L (outlet 0.3-2, network and secondary supply >= 0.05)"),
        ColumnSpec("total_coliform_detected", "boolean", "total coliforms detected in 100 mL"),
        ColumnSpec("meets_standard", "boolean", "all four indicators within GB 5749-2022 limits"),
    ),
)
def water_quality_samples(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("water_quality_samples", seed)
    stations: list[tuple[str, str, str]] = []
    for district in DISTRICTS:
        for k in range(_WQ_STATIONS_PER_DISTRICT[district]):
            stations.append((f"WQ-{len(stations) + 1:02d}", _WQ_STATION_TYPES[k % 3], district))
    chlorine_mean = {"waterworks_outlet": 0.8, "pipe_network": 0.35, "secondary_supply": 0.2}
    rows: dict[str, list[Any]] = {k: [] for k in (
        "sampled_at", "station_id", "station_type", "district", "ph", "turbidity_ntu",
        "residual_chlorine_mg_l", "total_coliform_detected", "meets_standard")}
    for day in _day_series(120, scale):
        for hour in (9, 15):
            at = datetime(day.year, day.month, day.day, hour)
            for station_id, station_type, district in stations:
                ph = min(9.0, max(6.0, rng.gauss(7.6, 0.2)))
                turbidity = 0.25 * math.exp(rng.gauss(0, 0.45)) * (5.0 if rng.random() < 0.01 else 1.0)
                chlorine = max(0.0, rng.gauss(chlorine_mean[station_type], 0.12))
                if rng.random() < 0.005:
                    chlorine *= 0.1
                coliform = rng.random() < (0.05 if chlorine < 0.05 else 0.001)
                ph, turbidity, chlorine = round(ph, 2), round(turbidity, 2), round(chlorine, 2)
                rows["sampled_at"].append(at)
                rows["station_id"].append(station_id)
                rows["station_type"].append(station_type)
                rows["district"].append(district)
                rows["ph"].append(ph)
                rows["turbidity_ntu"].append(turbidity)
                rows["residual_chlorine_mg_l"].append(chlorine)
                rows["total_coliform_detected"].append(coliform)
                rows["meets_standard"].append(_meets_gb5749(station_type, ph, turbidity, chlorine, coliform))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 5. Gas: connections and use by district and user class
# --------------------------------------------------------------------------------------
_GAS_CLASSES: tuple[str, ...] = ("residential", "commercial", "industrial", "heating_boiler")


@_dataset(
    title_zh="分区月度燃气接驳与用气量", title_en="Monthly gas connections and use by district",
    provider="baotou_gas", category="能源/燃气", grade="general_2", openness="conditional",
    update_frequency="monthly",
    description="New and active piped natural gas connections and gas sold per month, by district and user class.",
    columns=(
        ColumnSpec("month", "date", "first day of the month"),
        _district_column(),
        _category("user_class", "user class of the gas connections", _GAS_CLASSES),
        ColumnSpec("new_connections", "integer", "connections commissioned in the month"),
        ColumnSpec("active_connections", "integer", "connections active at the end of the month"),
        ColumnSpec("volume_10k_m3", "float", "natural gas sold in the month, 10,000 cubic metres"),
    ),
)
def gas_use_monthly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("gas_use_monthly", seed)
    months = _month_series(60, scale)
    per_connection_m3 = {"residential": 22.0, "commercial": 450.0, "industrial": 9000.0, "heating_boiler": 60000.0}
    rows: dict[str, list[Any]] = {k: [] for k in (
        "month", "district", "user_class", "new_connections", "active_connections", "volume_10k_m3")}
    for district in DISTRICTS:
        households = POPULATION_10K[district] * 10_000 / 2.6
        coverage = 0.8 if district in URBAN_DISTRICTS else 0.3
        industry = _HEAVY_INDUSTRY["C"][district]
        start = {
            "residential": households * coverage * 0.85,
            "commercial": POPULATION_10K[district] * 25,
            "industrial": industry * 6,
            "heating_boiler": POPULATION_10K[district] * 0.6,
        }
        for user_class in _GAS_CLASSES:
            active = max(1, round(start[user_class]))
            for month in months:
                rate = 0.003 if user_class == "residential" else 0.002
                if month.month in (1, 2):
                    rate *= 0.4  # frozen ground and the Spring Festival slow installation
                new = max(0, round(active * rate * math.exp(rng.gauss(0, 0.3))))
                active += new
                if user_class == "heating_boiler":
                    season = {11: 1.0, 12: 1.25, 1: 1.3, 2: 1.1, 3: 0.8, 10: 0.35, 4: 0.3}.get(month.month, 0.02)
                elif user_class == "residential":
                    season = {11: 1.4, 12: 1.7, 1: 1.8, 2: 1.6, 3: 1.3, 10: 1.1, 4: 1.1}.get(month.month, 0.8)
                else:
                    season = 1.1 if month.month in (11, 12, 1, 2, 3) else 1.0
                volume = active * per_connection_m3[user_class] * season * math.exp(rng.gauss(0, 0.06))
                rows["month"].append(month)
                rows["district"].append(district)
                rows["user_class"].append(user_class)
                rows["new_connections"].append(new)
                rows["active_connections"].append(active)
                rows["volume_10k_m3"].append(round(volume / 10_000, 2))
    return pl.DataFrame(rows).sort(["month", "district", "user_class"], maintain_order=True)


# --------------------------------------------------------------------------------------
# 6. Health: outpatient visits (pseudonymised patients: important, personal)
# --------------------------------------------------------------------------------------
_AGE_BANDS: tuple[str, ...] = ("0-4", "5-14", "15-24", "25-44", "45-64", "65+")
_AGE_WEIGHTS: tuple[float, ...] = (0.08, 0.1, 0.09, 0.27, 0.28, 0.18)
_FACILITY_LEVELS: tuple[str, ...] = ("community_health_centre", "township_health_centre", "secondary_hospital",
                                     "tertiary_hospital")
_DEPARTMENTS: tuple[str, ...] = ("internal_medicine", "surgery", "pediatrics", "obstetrics_gynecology",
                                 "ophthalmology_ent", "traditional_chinese_medicine", "emergency", "dental")
#: ICD-10 chapters as their first code letter(s).
_ICD10_CHAPTERS: tuple[str, ...] = ("A-B", "C-D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O",
                                    "R", "S-T", "Z")


@_dataset(
    title_zh="门诊就诊记录", title_en="Outpatient clinic visits",
    provider="baotou_health", category="卫生健康/门诊", grade="general_4", openness="conditional",
    update_frequency="daily",
    description="One row per outpatient visit with a pseudonymised patient id, age band, sex, district, "
                "facility level, department, ICD-10 chapter and fee. Health data of individuals: only "
                "aggregate sandbox results may ever leave.",
    columns=(
        ColumnSpec("visit_date", "date", "date of the visit"),
        ColumnSpec("patient_hash", "string",
                   "pseudonymised patient id (salted SHA-256, 16 hex chars); personal information "
                   "under GB/T 35273-2020", personal=True),
        _category("sex", "sex of the patient", ("female", "male")),
        _category("age_band", "age of the patient in years, banded", _AGE_BANDS),
        _district_column(),
        _category("facility_level", "level of the health facility", _FACILITY_LEVELS),
        _category("department", "clinical department", _DEPARTMENTS),
        _category("icd10_chapter", "ICD-10 chapter of the main diagnosis (code letters)", _ICD10_CHAPTERS),
        ColumnSpec("fee_yuan", "float", "total fee of the visit, yuan"),
        ColumnSpec("insured", "boolean", "paid (partly) by basic medical insurance"),
    ),
)
def clinic_visits(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("clinic_visits", seed)
    days = _day_series(366, 1.0)  # one calendar year; scale adds visits, not days
    day_weights = [
        (0.55 if d.weekday() >= 5 else 1.0) * (1.3 if d.month in (12, 1, 2) else 1.0)
        * (0.5 if (d.month, d.day) in ((2, 10), (2, 11), (2, 12)) else 1.0)
        for d in days
    ]
    n_patients = _n(6000, scale)
    patients = list(zip(
        [_pseudonym("patient", seed, i) for i in range(n_patients)],
        rng.choices(("female", "male"), k=n_patients),
        rng.choices(_AGE_BANDS, weights=_AGE_WEIGHTS, k=n_patients),
        _weighted_district(rng, n_patients),
        strict=True,
    ))
    n_visits = _n(20_000, scale)
    visit_days = rng.choices(days, weights=day_weights, k=n_visits)
    visits = []
    for visit_no, day in enumerate(visit_days):
        # Squaring a uniform draw makes some patients frequent visitors, as in real clinics.
        patient, sex, age, district = patients[min(n_patients - 1, int(n_patients * rng.random() ** 2))]
        winter = day.month in (12, 1, 2, 3)
        urban = district in URBAN_DISTRICTS
        level = rng.choices(_FACILITY_LEVELS, weights=(0.35, 0.05 if urban else 0.35, 0.3, 0.3 if urban else 0.1))[0]
        if age in ("0-4", "5-14"):
            department = rng.choices(_DEPARTMENTS, weights=(1, 1, 12, 0, 2, 1, 2, 2))[0]
        else:
            obstetrics = 3 if sex == "female" and age in ("15-24", "25-44") else 0
            department = rng.choices(_DEPARTMENTS, weights=(10, 4, 0, obstetrics, 2, 3, 2, 2))[0]
        chapter_weights = [2, 1, 3 if age in ("45-64", "65+") else 1, 1, 1, 2, 5 if age in ("45-64", "65+") else 1,
                           (9 if winter else 4) * (2 if age in ("0-4", "5-14", "65+") else 1), 4, 2, 3, 2,
                           3 if department == "obstetrics_gynecology" else 0, 3, 2, 2]
        chapter = rng.choices(_ICD10_CHAPTERS, weights=chapter_weights)[0]
        fee = 60 * math.exp(rng.gauss(0, 0.8)) * (2.2 if level == "tertiary_hospital" else 1.0)
        visits.append((day, visit_no, patient, sex, age, district, level, department, chapter, round(fee, 2),
                       rng.random() < 0.88))
    visits.sort(key=lambda v: (v[0], v[1]))
    names = ("visit_date", "_no", "patient_hash", "sex", "age_band", "district", "facility_level",
             "department", "icd10_chapter", "fee_yuan", "insured")
    return pl.DataFrame(visits, schema=list(names), orient="row").drop("_no")


# --------------------------------------------------------------------------------------
# 7. Health: daily hospital bed occupancy
# --------------------------------------------------------------------------------------
_HOSPITALS: tuple[tuple[str, str, str, int], ...] = (
    ("包头市中心医院", "tertiary", "东河区", 1800),
    ("内蒙古包钢医院", "tertiary", "昆都仑区", 1600),
    ("包头医学院第一附属医院", "tertiary", "昆都仑区", 1700),
    ("包头医学院第二附属医院", "tertiary", "青山区", 1200),
    ("包头市第四医院", "secondary", "青山区", 600),
    ("包头市第八医院", "secondary", "九原区", 500),
    ("包头市蒙医中医医院", "tertiary", "东河区", 700),
    ("包头市妇幼保健院", "tertiary", "昆都仑区", 500),
    ("稀土高新区医院", "secondary", "稀土高新区", 300),
    ("土默特右旗医院", "secondary", "土默特右旗", 450),
    ("固阳县医院", "secondary", "固阳县", 300),
    ("达茂旗医院", "secondary", "达尔罕茂明安联合旗", 250),
)
_WARDS: tuple[tuple[str, float, float], ...] = (
    # ward, share of beds, mean length of stay in days
    ("internal_medicine", 0.3, 9.0), ("surgery", 0.25, 7.0), ("pediatrics", 0.1, 5.0),
    ("obstetrics_gynecology", 0.1, 4.0), ("intensive_care", 0.05, 6.0), ("oncology", 0.2, 12.0),
)


@_dataset(
    title_zh="医院病床使用情况", title_en="Daily hospital bed occupancy",
    provider="baotou_health", category="卫生健康/医疗资源", grade="general_2", openness="unconditional",
    update_frequency="daily",
    description="Open and occupied beds, admissions and discharges per hospital and ward, per day.",
    columns=(
        ColumnSpec("report_date", "date", "day of the midnight census"),
        ColumnSpec("hospital", "string", "hospital name"),
        _category("hospital_level", "hospital grade", ("secondary", "tertiary")),
        _district_column(),
        _category("ward", "ward", [w[0] for w in _WARDS]),
        ColumnSpec("beds_open", "integer", "beds open at midnight"),
        ColumnSpec("beds_occupied", "integer", "beds occupied at midnight"),
        ColumnSpec("admissions", "integer", "patients admitted during the day"),
        ColumnSpec("discharges", "integer", "patients discharged during the day"),
    ),
)
def hospital_bed_occupancy(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("hospital_bed_occupancy", seed)
    beds = {(h[0], w[0]): max(4, round(h[3] * w[1] * rng.uniform(0.85, 1.15))) for h in _HOSPITALS for w in _WARDS}
    rows: dict[str, list[Any]] = {k: [] for k in (
        "report_date", "hospital", "hospital_level", "district", "ward", "beds_open", "beds_occupied",
        "admissions", "discharges")}
    for day in _day_series(60, scale):
        weekend = day.weekday() >= 5
        winter = day.month in (12, 1, 2)
        for hospital, level, district, _ in _HOSPITALS:
            for ward, _share, stay in _WARDS:
                open_beds = beds[(hospital, ward)]
                rate = (0.88 if level == "tertiary" else 0.72) + (0.07 if winter and ward in (
                    "internal_medicine", "pediatrics", "intensive_care") else 0.0)
                occupied = min(open_beds, max(0, round(open_beds * rate * math.exp(rng.gauss(0, 0.06)))))
                flow = occupied / stay
                rows["report_date"].append(day)
                rows["hospital"].append(hospital)
                rows["hospital_level"].append(level)
                rows["district"].append(district)
                rows["ward"].append(ward)
                rows["beds_open"].append(open_beds)
                rows["beds_occupied"].append(occupied)
                admitted = flow * (0.6 if weekend else 1.12) * math.exp(rng.gauss(0, 0.2))
                discharged = flow * (0.7 if weekend else 1.1) * math.exp(rng.gauss(0, 0.2))
                rows["admissions"].append(max(0, round(admitted)))
                rows["discharges"].append(max(0, round(discharged)))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 8. Health: weekly vaccination doses
# --------------------------------------------------------------------------------------
_VACCINE_AGE: tuple[tuple[str, str, float], ...] = (
    # vaccine, age group, weekly doses of a district of 10k residents
    ("hepatitis_b", "infant", 2.2), ("bcg", "infant", 0.8), ("polio", "infant", 2.0), ("polio", "child", 0.5),
    ("dtap", "infant", 2.0), ("dtap", "child", 0.6), ("mmr", "infant", 0.8), ("mmr", "child", 0.6),
    ("japanese_encephalitis", "infant", 0.7), ("japanese_encephalitis", "child", 0.5), ("hepatitis_a", "child", 0.7),
    ("meningococcal", "infant", 1.2), ("meningococcal", "child", 0.5), ("influenza", "child", 1.5),
    ("influenza", "school", 2.0), ("influenza", "adult", 2.5), ("influenza", "elderly", 4.0),
    ("hpv", "school", 0.8), ("hpv", "adult", 1.0), ("pneumococcal", "infant", 0.9), ("pneumococcal", "elderly", 0.8),
    ("rabies", "school", 0.6), ("rabies", "adult", 1.2), ("rabies", "elderly", 0.4),
)
_AGE_GROUPS: tuple[str, ...] = ("infant", "child", "school", "adult", "elderly")


@_dataset(
    title_zh="疫苗接种周报", title_en="Weekly vaccination doses by district, vaccine and age group",
    provider="baotou_cdc", category="卫生健康/疾病预防", grade="general_2", openness="conditional",
    update_frequency="weekly",
    description="Doses administered per week, by district, vaccine and age group "
                "(infant < 1, child 1-6, school 7-17, adult 18-59, elderly 60+).",
    columns=(
        ColumnSpec("week_start", "date", "Monday of the reporting week"),
        _district_column(),
        _category("vaccine", "vaccine", sorted({v[0] for v in _VACCINE_AGE})),
        _category("age_group", "age group of the vaccinated", _AGE_GROUPS),
        ColumnSpec("doses", "integer", "doses administered in the week"),
    ),
)
def vaccination_counts(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("vaccination_counts", seed)
    rows: dict[str, list[Any]] = {k: [] for k in ("week_start", "district", "vaccine", "age_group", "doses")}
    first = date(2024, 1, 1)  # a Monday
    for week in range(_n(52, scale)):
        monday = first + timedelta(weeks=week)
        for district in DISTRICTS:
            for vaccine, group, base in _VACCINE_AGE:
                season = 1.0
                if vaccine == "influenza":
                    season = {9: 2.5, 10: 5.0, 11: 4.0, 12: 1.5}.get(monday.month, 0.15)
                elif vaccine == "rabies":
                    season = 1.6 if monday.month in (5, 6, 7, 8, 9) else 0.7
                elif vaccine == "hpv":
                    season = 1.3 if monday.month in (7, 8) else 1.0
                if (monday.month == 2 and monday.day <= 17):
                    season *= 0.3  # Spring Festival
                expected = base * POPULATION_10K[district] * season
                rows["week_start"].append(monday)
                rows["district"].append(district)
                rows["vaccine"].append(vaccine)
                rows["age_group"].append(group)
                rows["doses"].append(max(0, round(expected * math.exp(rng.gauss(0, 0.2)))))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 9. Market regulation: enterprise registrations
# --------------------------------------------------------------------------------------
_ENTITY_TYPES: tuple[tuple[str, str, float], ...] = (
    # type, registration type code in the credit code, share
    ("individual_business", "92", 0.62), ("limited_liability_company", "91", 0.29),
    ("branch", "91", 0.04), ("partnership", "91", 0.02), ("farmer_cooperative", "93", 0.03),
)
_BRANDS: tuple[str, ...] = (
    "鑫盛", "华泰", "宏远", "瑞丰", "金鹿", "鹿城", "草原", "北方", "稀宝", "钢城", "黄河", "阴山",
    "敕勒", "聚源", "恒通", "天骄", "鸿运", "盛达", "蒙源", "昌盛", "永兴", "博创", "晟世", "德润",
)
_INDUSTRY_WORDS: Mapping[str, str] = {
    "A": "农牧", "B": "矿业", "C": "制造", "D": "能源", "E": "建筑工程", "F": "商贸", "G": "物流",
    "H": "餐饮", "I": "信息科技", "J": "投资", "K": "房地产开发", "L": "商务服务", "M": "科技",
    "N": "环保", "O": "家政服务", "P": "教育咨询", "Q": "健康管理", "R": "文化传媒", "S": "社会服务", "T": "国际",
}
_SHOP_WORDS: Mapping[str, str] = {"F": "便利店", "H": "饭店", "O": "维修部", "G": "货运部", "R": "文化工作室"}
_COMPANY_SECTIONS: Mapping[str, float] = {
    "A": 3, "B": 1, "C": 7, "D": 2, "E": 10, "F": 25, "G": 5, "H": 4, "I": 8, "J": 1, "K": 3, "L": 12,
    "M": 8, "N": 2, "O": 3, "P": 2, "Q": 1, "R": 3, "S": 0.5,
}
_SHOP_SECTIONS: Mapping[str, float] = {"F": 45, "H": 22, "O": 18, "G": 8, "R": 7}


def _enterprise(rng: random.Random, district: str) -> tuple[str, str, str, str, float]:
    """(credit_code, name, entity_type, section, registered capital in 10k yuan) of a synthetic entity."""
    entity_type, type_code, _ = rng.choices(_ENTITY_TYPES, weights=[e[2] for e in _ENTITY_TYPES])[0]
    brand = rng.choice(_BRANDS)
    place = district.removesuffix("联合旗")
    if entity_type == "individual_business":
        section = rng.choices(list(_SHOP_SECTIONS), weights=list(_SHOP_SECTIONS.values()))[0]
        name = f"{place}{brand}{_SHOP_WORDS[section]}"
        capital = 5 * math.exp(rng.gauss(0, 0.8))
    elif entity_type == "farmer_cooperative":
        section = "A"
        name = f"{place}{brand}种养殖专业合作社"
        capital = 50 * math.exp(rng.gauss(0, 0.7))
    else:
        section = rng.choices(list(_COMPANY_SECTIONS), weights=list(_COMPANY_SECTIONS.values()))[0]
        word = _INDUSTRY_WORDS[section]
        name = {
            "limited_liability_company": f"包头市{brand}{word}有限公司",
            "branch": f"内蒙古{brand}{word}有限公司包头分公司",
            "partnership": f"包头{brand}{word}合伙企业(有限合伙)",
        }[entity_type]
        capital = (0.0 if entity_type == "branch" else 100 * math.exp(rng.gauss(0, 1.2)))
    return _credit_code(rng, type_code, district), name, entity_type, section, round(capital, 2)


@_dataset(
    title_zh="市场主体登记信息", title_en="Enterprise and business registrations",
    provider="baotou_amr", category="市场监管/登记注册", grade="general_1", openness="unconditional",
    update_frequency="daily",
    description="New market entities registered: credit code, name, entity type, industry section, "
                "district and registered capital (public registration information).",
    columns=(
        ColumnSpec("registered_on", "date", "date of establishment registration"),
        ColumnSpec("credit_code", "string", "unified social credit code (GB 32100-2015)"),
        ColumnSpec("enterprise_name", "string", "registered name of the entity"),
        _category("entity_type", "legal form of the entity", [e[0] for e in _ENTITY_TYPES]),
        _section_column(),
        _district_column(),
        ColumnSpec("registered_capital_10k_yuan", "float",
                   "registered capital (funds for individual businesses), 10,000 yuan; 0 for branches"),
    ),
)
def enterprise_registrations(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("enterprise_registrations", seed)
    days = _day_series(366, 1.0)
    weights = [(0.15 if d.weekday() >= 5 else 1.0) * (0.35 if d.month == 2 and d.day < 20 else 1.0)
               * (1.2 if d.month in (3, 4, 5) else 1.0) for d in days]
    n = _n(8000, scale)
    events = [
        (day, i, district, *_enterprise(rng, district))
        for i, (day, district) in enumerate(zip(
            rng.choices(days, weights=weights, k=n), _weighted_district(rng, n, urban_bias=1.6), strict=True
        ))
    ]
    events.sort(key=lambda e: (e[0], e[1]))
    return pl.DataFrame({
        "registered_on": [e[0] for e in events],
        "credit_code": [e[3] for e in events],
        "enterprise_name": [e[4] for e in events],
        "entity_type": [e[5] for e in events],
        "industry_section": [e[6] for e in events],
        "district": [e[2] for e in events],
        "registered_capital_10k_yuan": [e[7] for e in events],
    })


# --------------------------------------------------------------------------------------
# 10. Market regulation: administrative penalties and credit records
# --------------------------------------------------------------------------------------
_VIOLATIONS: tuple[tuple[str, float], ...] = (
    ("food_safety", 0.3), ("product_quality", 0.15), ("price_violation", 0.1), ("false_advertising", 0.12),
    ("unlicensed_operation", 0.12), ("special_equipment", 0.06), ("measurement", 0.05),
    ("trademark_infringement", 0.05), ("annual_report_overdue", 0.05),
)
_PENALTIES: tuple[tuple[str, float, float], ...] = (
    # penalty type, share, median fine in yuan
    ("warning", 0.25, 0.0), ("fine", 0.55, 5000.0), ("confiscation_and_fine", 0.15, 20000.0),
    ("suspension", 0.04, 30000.0), ("licence_revoked", 0.01, 50000.0),
)


@_dataset(
    title_zh="行政处罚与信用记录", title_en="Administrative penalties and credit records of enterprises",
    provider="baotou_amr", category="市场监管/信用监管", grade="general_1", openness="unconditional",
    update_frequency="daily",
    description="Administrative penalty decisions against market entities (publicised under the "
                "enterprise information disclosure rules) and whether the credit record was repaired.",
    columns=(
        ColumnSpec("decided_on", "date", "date of the penalty decision"),
        ColumnSpec("decision_no", "string", "penalty decision number"),
        ColumnSpec("credit_code", "string", "unified social credit code of the penalised entity"),
        _section_column(),
        _district_column(),
        _category("violation_type", "kind of violation", [v[0] for v in _VIOLATIONS]),
        _category("penalty_type", "kind of penalty", [p[0] for p in _PENALTIES]),
        ColumnSpec("fine_yuan", "float", "fine and confiscated income, yuan (0 for a warning)"),
        ColumnSpec("publicised", "boolean", "published on the national enterprise credit information system"),
        ColumnSpec("credit_repaired", "boolean", "the entity completed credit repair for this record"),
    ),
)
def enterprise_credit_penalties(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("enterprise_credit_penalties", seed)
    days = _day_series(366, 1.0)
    weights = [0.05 if d.weekday() >= 5 else 1.0 for d in days]
    n = _n(3000, scale)
    events = []
    for i, (day, district) in enumerate(zip(
        rng.choices(days, weights=weights, k=n), _weighted_district(rng, n, urban_bias=1.4), strict=True
    )):
        code, _name, _type, section, _capital = _enterprise(rng, district)
        violation = rng.choices([v[0] for v in _VIOLATIONS], weights=[v[1] for v in _VIOLATIONS])[0]
        penalty, _share, median = rng.choices(_PENALTIES, weights=[p[1] for p in _PENALTIES])[0]
        fine = 0.0 if median == 0 else round(median * math.exp(rng.gauss(0, 0.9)) / 100) * 100.0
        age_days = (days[-1] - day).days
        repaired = penalty != "licence_revoked" and age_days > 90 and rng.random() < 0.3
        events.append((day, i, code, section, district, violation, penalty, fine, rng.random() < 0.97, repaired))
    events.sort(key=lambda e: (e[0], e[1]))
    numbers: dict[int, int] = {}
    decision_no = []
    for e in events:
        numbers[e[0].year] = numbers.get(e[0].year, 0) + 1
        decision_no.append(f"包市监处罚〔{e[0].year}〕{numbers[e[0].year]}号")
    return pl.DataFrame({
        "decided_on": [e[0] for e in events], "decision_no": decision_no, "credit_code": [e[2] for e in events],
        "industry_section": [e[3] for e in events], "district": [e[4] for e in events],
        "violation_type": [e[5] for e in events], "penalty_type": [e[6] for e in events],
        "fine_yuan": [e[7] for e in events], "publicised": [e[8] for e in events],
        "credit_repaired": [e[9] for e in events],
    })


# --------------------------------------------------------------------------------------
# 11. Environment: hourly air quality by station
# --------------------------------------------------------------------------------------
_AIR_STATIONS: tuple[tuple[str, str], ...] = (
    ("市环境监测站", "昆都仑区"), ("青山宾馆", "青山区"), ("东河鸿龙湾", "东河区"), ("包百大楼", "昆都仑区"),
    ("东河城环局", "东河区"), ("九原区政府", "九原区"), ("稀土高新区", "稀土高新区"), ("石拐区", "石拐区"),
)
# Breakpoints of HJ 633-2012 (24-hour limits for PM, 1-hour limits for NO2) and IAQI levels.
_IAQI_LEVELS = (0, 50, 100, 150, 200, 300, 400, 500)
_PM25_BREAKS = (0, 35, 75, 115, 150, 250, 350, 500)
_PM10_BREAKS = (0, 50, 150, 250, 350, 420, 500, 600)
_NO2_BREAKS = (0, 100, 200, 700, 1200, 2340, 3090, 3840)


def iaqi(concentration: float, breaks: Sequence[float]) -> float:
    """Individual air quality index of one pollutant (HJ 633-2012), linear between breakpoints."""
    if concentration >= breaks[-1]:
        return 500.0
    for k in range(1, len(breaks)):
        if concentration <= breaks[k]:
            lo, hi = breaks[k - 1], breaks[k]
            return _IAQI_LEVELS[k - 1] + (_IAQI_LEVELS[k] - _IAQI_LEVELS[k - 1]) * (concentration - lo) / (hi - lo)
    return 500.0  # pragma: no cover - unreachable, the loop covers every value below the last break


@_dataset(
    title_zh="空气质量小时监测", title_en="Hourly air quality by monitoring station",
    provider="baotou_environment", category="生态环境/空气质量", grade="general_1", openness="unconditional",
    update_frequency="hourly",
    description="Hourly mean PM2.5, PM10 and NO2 per monitoring station with the AQI of those three "
                "pollutants (HJ 633-2012); heating season and spring dust visible.",
    columns=(
        ColumnSpec("observed_at", "datetime", "start of the hour, local time (UTC+8)"),
        _category("station", "monitoring station", [s[0] for s in _AIR_STATIONS]),
        _district_column(),
        ColumnSpec("pm25_ug_m3", "float", "PM2.5 hourly mean, µg/m³"),
        ColumnSpec("pm10_ug_m3", "float", "PM10 hourly mean, µg/m³"),
        ColumnSpec("no2_ug_m3", "float", "NO2 hourly mean, µg/m³"),
        ColumnSpec("aqi", "integer", "air quality index of PM2.5, PM10 and NO2 (highest IAQI, rounded up)"),
    ),
)
def air_quality_hourly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("air_quality_hourly", seed)
    days = _day_series(90, scale)
    diurnal_pm = [1.2, 1.2, 1.15, 1.1, 1.05, 1.0, 1.0, 1.05, 1.05, 1.0, 0.9, 0.85, 0.8, 0.78, 0.78, 0.8,
                  0.85, 0.9, 1.0, 1.1, 1.2, 1.25, 1.25, 1.22]
    diurnal_no2 = [0.9, 0.8, 0.75, 0.7, 0.7, 0.8, 1.0, 1.25, 1.35, 1.15, 0.95, 0.85, 0.8, 0.75, 0.75, 0.8,
                   0.9, 1.1, 1.3, 1.35, 1.25, 1.1, 1.0, 0.95]
    station_level = {name: rng.uniform(0.85, 1.2) for name, _ in _AIR_STATIONS}
    state = {name: [0.0, 0.0, 0.0] for name, _ in _AIR_STATIONS}  # AR(1) log-deviations
    rows: dict[str, list[Any]] = {k: [] for k in (
        "observed_at", "station", "district", "pm25_ug_m3", "pm10_ug_m3", "no2_ug_m3", "aqi")}
    for day in days:
        heating = _in_heating_season(day)
        dust = day.month in (3, 4, 5)
        for hour in range(24):
            at = datetime(day.year, day.month, day.day, hour)
            for name, district in _AIR_STATIONS:
                s = state[name]
                for k, sd in enumerate((0.08, 0.09, 0.07)):
                    s[k] = 0.9 * s[k] + rng.gauss(0, sd)
                level = station_level[name]
                pm25 = 32 * level * (1.6 if heating else 0.9) * diurnal_pm[hour] * math.exp(s[0])
                pm10 = (pm25 * 1.7 + 25 * (2.0 if dust else 1.0)) * math.exp(s[1])
                no2 = 28 * level * (1.25 if heating else 0.95) * diurnal_no2[hour] * math.exp(s[2])
                pm25, pm10, no2 = round(pm25, 1), round(pm10, 1), round(no2, 1)
                index = max(iaqi(pm25, _PM25_BREAKS), iaqi(pm10, _PM10_BREAKS), iaqi(no2, _NO2_BREAKS))
                rows["observed_at"].append(at)
                rows["station"].append(name)
                rows["district"].append(district)
                rows["pm25_ug_m3"].append(pm25)
                rows["pm10_ug_m3"].append(pm10)
                rows["no2_ug_m3"].append(no2)
                rows["aqi"].append(math.ceil(index - 1e-9))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 12. Transport: taxi and ride-hailing trips by district and hour
# --------------------------------------------------------------------------------------
_TRIP_HOUR_PROFILE: tuple[float, ...] = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.15, 0.4, 1.0, 1.4, 1.0, 0.9, 1.0, 1.2, 1.0, 0.9, 0.95,
    1.1, 1.4, 1.5, 1.2, 1.0, 0.9, 0.7, 0.45,
)


@_dataset(
    title_zh="出租车与网约车小时出行量", title_en="Hourly taxi and ride-hailing trips by district",
    provider="baotou_transport", category="交通出行/出租车网约车", grade="general_2", openness="conditional",
    update_frequency="hourly",
    description="Trips starting in each district and hour for cruising taxis and ride-hailing, with mean "
                "distance, duration and fare (aggregated from the transport supervision platform).",
    columns=(
        ColumnSpec("hour_start", "datetime", "start of the hour, local time (UTC+8)"),
        _district_column(),
        _category("service", "taxi (巡游出租车) or ride_hailing (网约车)", ("taxi", "ride_hailing")),
        ColumnSpec("trips", "integer", "trips starting in the district in the hour"),
        ColumnSpec("avg_distance_km", "float", "mean trip distance, km; null without trips", nullable=True),
        ColumnSpec("avg_duration_min", "float", "mean trip duration, minutes; null without trips", nullable=True),
        ColumnSpec("avg_fare_yuan", "float", "mean fare, yuan; null without trips", nullable=True),
    ),
)
def taxi_trips_hourly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("taxi_trips_hourly", seed)
    districts = pl.DataFrame({
        "district": list(DISTRICTS),
        "d_rank": list(range(len(DISTRICTS))),
        "base": [POPULATION_10K[d] * (1.4 if d in URBAN_DISTRICTS else 0.25) for d in DISTRICTS],
        "distance": [5.2 if d in URBAN_DISTRICTS else 8.5 for d in DISTRICTS],
    })
    services = pl.DataFrame({"service": ["taxi", "ride_hailing"], "share": [0.58, 0.42], "price": [1.0, 0.9]})
    hours = pl.DataFrame({"hour": list(range(24)), "profile": list(_TRIP_HOUR_PROFILE)})
    days = pl.DataFrame({"day": _day_series(60, scale)})
    grid = days.join(hours, how="cross").join(districts, how="cross").join(services, how="cross").sort(
        ["day", "hour", "d_rank", "service"], maintain_order=True
    )
    n = grid.height
    grid = grid.with_columns(
        pl.Series("n_trips", _noise(rng, n, 0.25)), pl.Series("n_dist", _noise(rng, n, 0.12)),
        pl.Series("n_speed", _noise(rng, n, 0.1)),
    )
    weekend = pl.col("day").dt.weekday() >= 6
    hour = pl.col("hour")
    trips = (pl.col("base") * pl.col("share") * pl.col("profile") * pl.col("n_trips")
             * pl.when(weekend & (hour >= 10)).then(1.15).otherwise(1.0)).round(0).cast(pl.Int64)
    distance = pl.col("distance") * pl.col("n_dist")
    speed = pl.when(hour.is_in([7, 8, 17, 18])).then(18.0).when((hour >= 22) | (hour <= 5)).then(35.0).otherwise(26.0)
    # 8 yuan for the first 3 km, 1.6 yuan/km after, 20% night surcharge (22:00-05:00).
    fare = ((8.0 + (distance - 3.0).clip(lower_bound=0.0) * 1.6) * pl.col("price")
            * pl.when((hour >= 22) | (hour <= 4)).then(1.2).otherwise(1.0))
    has_trips = pl.col("trips") > 0
    return grid.with_columns(trips=trips).select(
        hour_start=pl.col("day").cast(pl.Datetime("us")) + pl.duration(hours=hour),
        district=pl.col("district"),
        service=pl.col("service"),
        trips=pl.col("trips"),
        avg_distance_km=pl.when(has_trips).then(distance.round(2)),
        avg_duration_min=pl.when(has_trips).then((distance / (speed * pl.col("n_speed")) * 60 + 2).round(1)),
        avg_fare_yuan=pl.when(has_trips).then(fare.round(2)),
    )


# --------------------------------------------------------------------------------------
# 13. Heating: complaints during the heating season
# --------------------------------------------------------------------------------------
_COMPLAINT_TYPES: tuple[tuple[str, float], ...] = (
    ("low_temperature", 0.55), ("no_heating", 0.1), ("radiator_leak", 0.12), ("billing", 0.1),
    ("noise", 0.03), ("service_attitude", 0.05), ("other", 0.05),
)
_CHANNELS: tuple[tuple[str, float], ...] = (
    ("hotline_12345", 0.55), ("company_hotline", 0.25), ("wechat_app", 0.15), ("service_counter", 0.05),
)


@_dataset(
    title_zh="供热投诉工单", title_en="Heating supply complaints",
    provider="baotou_heating", category="公用事业/供热", grade="general_3", openness="conditional",
    update_frequency="daily",
    description="Complaint tickets of the 2023-2024 heating season (15 Oct - 15 Apr) with a pseudonymised "
                "complainant, type, channel, measured indoor temperature and resolution time.",
    columns=(
        ColumnSpec("received_at", "datetime", "time the ticket was received, local time (UTC+8)"),
        ColumnSpec("ticket_no", "string", "ticket number"),
        ColumnSpec("complainant_hash", "string",
                   "pseudonymised complainant (salted SHA-256 of phone number, 16 hex chars); personal "
                   "information under GB/T 35273-2020", personal=True),
        _district_column(),
        _category("complaint_type", "what the complaint is about", [c[0] for c in _COMPLAINT_TYPES]),
        _category("channel", "how the complaint arrived", [c[0] for c in _CHANNELS]),
        ColumnSpec("indoor_temp_c", "float",
                   "indoor temperature measured on site, °C (standard >= 18); null if not measured",
                   nullable=True),
        ColumnSpec("resolved", "boolean", "the ticket was closed as resolved"),
        ColumnSpec("resolution_hours", "float", "hours from receipt to resolution; null if unresolved",
                   nullable=True),
    ),
)
def heating_complaints(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("heating_complaints", seed)
    season_start = date(2023, 10, 15)
    days = [season_start + timedelta(days=i) for i in range((date(2024, 4, 15) - season_start).days + 1)]
    day_weights = [(3.0 if i < 7 else 1.0) * (1.5 if d.month in (12, 1) else 1.0) for i, d in enumerate(days)]
    hour_weights = [0.1] * 6 + [0.6, 1.5, 1.8, 1.5, 1.2, 1.0, 0.9, 0.9, 1.0, 1.0, 1.0, 1.1, 1.3, 1.4, 1.2, 0.9,
                                0.5, 0.2]
    residents = _n(4000, scale)
    types, type_w = [c[0] for c in _COMPLAINT_TYPES], [c[1] for c in _COMPLAINT_TYPES]
    channels, channel_w = [c[0] for c in _CHANNELS], [c[1] for c in _CHANNELS]
    n = _n(5000, scale)
    events = []
    for i, (day, hour, district) in enumerate(zip(
        rng.choices(days, weights=day_weights, k=n), rng.choices(range(24), weights=hour_weights, k=n),
        _weighted_district(rng, n, urban_bias=2.0), strict=True,
    )):
        at = datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60))
        kind = rng.choices(types, weights=type_w)[0]
        measured = kind in ("low_temperature", "no_heating") and rng.random() < 0.8
        temp = round(rng.gauss(16.2 if kind == "low_temperature" else 12.5, 1.8), 1) if measured else None
        resolved = rng.random() < 0.93
        hours = round(6 * math.exp(rng.gauss(0, 0.9)), 1) if resolved else None
        events.append((at, i, _pseudonym("resident", seed, rng.randrange(residents)),
                       district, kind, rng.choices(channels, weights=channel_w)[0],
                       temp, resolved, hours))
    events.sort(key=lambda e: (e[0], e[1]))
    per_day: dict[date, int] = {}
    tickets = []
    for e in events:
        per_day[e[0].date()] = per_day.get(e[0].date(), 0) + 1
        tickets.append(f"RL{e[0]:%Y%m%d}{per_day[e[0].date()]:05d}")
    return pl.DataFrame({
        "received_at": [e[0] for e in events], "ticket_no": tickets, "complainant_hash": [e[2] for e in events],
        "district": [e[3] for e in events], "complaint_type": [e[4] for e in events],
        "channel": [e[5] for e in events],
        "indoor_temp_c": pl.Series([e[6] for e in events], dtype=pl.Float64),
        "resolved": [e[7] for e in events],
        "resolution_hours": pl.Series([e[8] for e in events], dtype=pl.Float64),
    })


# --------------------------------------------------------------------------------------
# 14. Real estate: transactions by district and month
# --------------------------------------------------------------------------------------
_NEW_BUILD_PRICE: Mapping[str, float] = {
    "昆都仑区": 8500, "青山区": 8000, "东河区": 7000, "九原区": 7500, "石拐区": 3500, "白云鄂博矿区": 3800,
    "稀土高新区": 9000, "土默特右旗": 4500, "固阳县": 3800, "达尔罕茂明安联合旗": 3600,
}


@_dataset(
    title_zh="分区月度房屋交易", title_en="Monthly real-estate transactions by district",
    provider="baotou_natural_resources", category="自然资源/不动产登记", grade="general_2",
    openness="unconditional", update_frequency="monthly",
    description="Registered sales of new and resale property per month, district and use, with floor area "
                "and mean price.",
    columns=(
        ColumnSpec("month", "date", "first day of the registration month"),
        _district_column(),
        _category("market", "new_build (新建商品房) or resale (二手房)", ("new_build", "resale")),
        _category("usage", "residential or commercial property", ("residential", "commercial")),
        ColumnSpec("transactions", "integer", "registered sales"),
        ColumnSpec("floor_area_m2", "float", "total floor area sold, m²"),
        ColumnSpec("avg_price_yuan_m2", "float", "mean price per m², yuan; null without sales", nullable=True),
    ),
)
def real_estate_transactions(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("real_estate_transactions", seed)
    months = _month_series(60, scale)
    origin = months[0]
    new_share = {"九原区": 0.65, "稀土高新区": 0.7}
    rows: dict[str, list[Any]] = {k: [] for k in (
        "month", "district", "market", "usage", "transactions", "floor_area_m2", "avg_price_yuan_m2")}
    for month in months:
        years = _years_since(month, origin)
        season = {1: 0.8, 2: 0.5, 3: 1.1, 4: 1.15, 5: 1.15, 9: 1.15, 10: 1.1}.get(month.month, 1.0)
        for district in DISTRICTS:
            total = POPULATION_10K[district] * 9 * season * 0.93 ** years
            share_new = new_share.get(district, 0.4 if district in URBAN_DISTRICTS else 0.3)
            for market in ("new_build", "resale"):
                for usage in ("residential", "commercial"):
                    expected = (total * (share_new if market == "new_build" else 1 - share_new)
                                * (0.88 if usage == "residential" else 0.12))
                    count = max(0, round(expected * math.exp(rng.gauss(0, 0.2))))
                    unit_area = 100.0 if usage == "residential" else 60.0
                    area = count * unit_area * math.exp(rng.gauss(0, 0.25 / math.sqrt(max(count, 1))))
                    price = (_NEW_BUILD_PRICE[district] * (0.85 if market == "resale" else 1.0)
                             * (1.3 if usage == "commercial" else 1.0) * 0.97 ** years * math.exp(rng.gauss(0, 0.04)))
                    rows["month"].append(month)
                    rows["district"].append(district)
                    rows["market"].append(market)
                    rows["usage"].append(usage)
                    rows["transactions"].append(count)
                    rows["floor_area_m2"].append(round(area, 1))
                    rows["avg_price_yuan_m2"].append(round(price, 0) if count else None)
    return pl.DataFrame(rows, schema_overrides={"avg_price_yuan_m2": pl.Float64})


# --------------------------------------------------------------------------------------
# 15. Social security: employment and contributions by industry
# --------------------------------------------------------------------------------------
_EMPLOYMENT_SHARE: Mapping[str, float] = {
    "A": 0.02, "B": 0.04, "C": 0.22, "D": 0.04, "E": 0.1, "F": 0.1, "G": 0.06, "H": 0.04, "I": 0.02,
    "J": 0.03, "K": 0.03, "L": 0.04, "M": 0.02, "N": 0.02, "O": 0.02, "P": 0.08, "Q": 0.06, "R": 0.01,
    "S": 0.05,
}
_WAGE_BASE: Mapping[str, float] = {
    "A": 4200, "B": 7800, "C": 6800, "D": 8500, "E": 5200, "F": 4800, "G": 6200, "H": 4200, "I": 8200,
    "J": 9800, "K": 5600, "L": 5200, "M": 7600, "N": 5400, "O": 4300, "P": 7200, "Q": 7400, "R": 5600,
    "S": 7000,
}


@_dataset(
    title_zh="分行业社会保险参保与缴费", title_en="Monthly social insurance enrolment and contributions by industry",
    provider="baotou_hrss", category="人社/社会保险", grade="general_3", openness="conditional",
    update_frequency="monthly",
    description="Employees insured in basic pension insurance per district and GB/T 4754 section, new "
                "enrolments, separations, mean contribution base and pension contributions collected.",
    columns=(
        ColumnSpec("month", "date", "first day of the contribution month"),
        _district_column(),
        _section_column(),
        ColumnSpec("insured_employees", "integer", "employees insured at month end"),
        ColumnSpec("new_enrolments", "integer", "employees enrolled in the month"),
        ColumnSpec("separations", "integer", "employees whose insurance stopped in the month"),
        ColumnSpec("avg_contribution_base_yuan", "float", "mean monthly contribution base, yuan"),
        ColumnSpec("pension_contributions_10k_yuan", "float",
                   "pension contributions collected (16% employer + 8% employee), 10,000 yuan"),
    ),
)
def social_security_contributions(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("social_security_contributions", seed)
    months = _month_series(24, scale)
    origin = months[0]
    rows: dict[str, list[Any]] = {k: [] for k in (
        "month", "district", "industry_section", "insured_employees", "new_enrolments", "separations",
        "avg_contribution_base_yuan", "pension_contributions_10k_yuan")}
    insured = {}
    for district in DISTRICTS:
        workforce = POPULATION_10K[district] * 10_000 * 0.32
        for section in LOCAL_SECTIONS:
            share = _EMPLOYMENT_SHARE[section]
            if section in _HEAVY_INDUSTRY:  # mines and plants employ more where they stand
                density = _HEAVY_INDUSTRY[section][district] / (POPULATION_10K[district] / 30.0 * 10)
                share *= min(2.0, max(0.2, density))
            insured[(district, section)] = max(3, round(workforce * share * rng.uniform(0.85, 1.15)))
    for month in months:
        hiring = 1.8 if month.month == 3 else (0.5 if month.month == 2 else 1.0)
        for district in DISTRICTS:
            for section in LOCAL_SECTIONS:
                current = insured[(district, section)]
                new = max(0, round(current * 0.014 * hiring * math.exp(rng.gauss(0, 0.25))))
                gone = min(current + new, max(0, round(current * 0.013 * math.exp(rng.gauss(0, 0.25)))))
                current = current + new - gone
                insured[(district, section)] = current
                base = _WAGE_BASE[section] * 1.05 ** _years_since(month, origin) * math.exp(rng.gauss(0, 0.03))
                rows["month"].append(month)
                rows["district"].append(district)
                rows["industry_section"].append(section)
                rows["insured_employees"].append(current)
                rows["new_enrolments"].append(new)
                rows["separations"].append(gone)
                rows["avg_contribution_base_yuan"].append(round(base, 0))
                rows["pension_contributions_10k_yuan"].append(round(current * base * 0.24 / 10_000, 2))
    return pl.DataFrame(rows)


# --------------------------------------------------------------------------------------
# 16. Power grid: substation load (critical infrastructure: important, not open)
# --------------------------------------------------------------------------------------
_SUBSTATIONS: tuple[tuple[str, str, str], ...] = (
    ("包头北500kV变电站", "500", "九原区"), ("包头南500kV变电站", "500", "土默特右旗"),
    ("昆北220kV变电站", "220", "昆都仑区"), ("青山220kV变电站", "220", "青山区"), ("东河220kV变电站", "220", "东河区"),
    ("沙尔沁220kV变电站", "220", "东河区"), ("稀土220kV变电站", "220", "稀土高新区"),
    ("白云220kV变电站", "220", "白云鄂博矿区"), ("萨拉齐220kV变电站", "220", "土默特右旗"),
    ("哈业胡同220kV变电站", "220", "九原区"),
    ("昆南110kV变电站", "110", "昆都仑区"), ("富强110kV变电站", "110", "青山区"),
    ("河西110kV变电站", "110", "昆都仑区"), ("麻池110kV变电站", "110", "九原区"),
    ("万水泉110kV变电站", "110", "稀土高新区"), ("滨河110kV变电站", "110", "稀土高新区"),
    ("石拐110kV变电站", "110", "石拐区"), ("固阳110kV变电站", "110", "固阳县"),
    ("百灵庙110kV变电站", "110", "达尔罕茂明安联合旗"), ("南门外110kV变电站", "110", "东河区"),
)
_CAPACITY_MVA: Mapping[str, tuple[float, float]] = {"500": (1800, 2400), "220": (360, 540), "110": (100, 150)}


@_dataset(
    title_zh="变电站负荷实时数据", title_en="Substation load (hourly)",
    provider="baotou_power", category="能源/电网运行", grade="important", openness="not_open",
    update_frequency="realtime",
    description="Hourly load of 110-500 kV substations. Operating data of critical power infrastructure: "
                "graded important and not open, so it may not be operated (national grading rules).",
    columns=(
        ColumnSpec("observed_at", "datetime", "start of the hour, local time (UTC+8)"),
        ColumnSpec("substation", "string", "substation name"),
        _category("voltage_kv", "highest voltage level, kV", ("110", "220", "500")),
        _district_column(),
        ColumnSpec("capacity_mva", "float", "installed transformer capacity, MVA"),
        ColumnSpec("load_mw", "float", "mean active load in the hour, MW"),
        ColumnSpec("load_ratio", "float", "load_mw / capacity_mva (power factor taken as 1)"),
    ),
)
def substation_load_hourly(scale: float, seed: int) -> pl.DataFrame:
    rng = _rng("substation_load_hourly", seed)
    profile = [0.82, 0.8, 0.78, 0.78, 0.8, 0.85, 0.92, 0.98, 1.0, 1.0, 1.0, 0.98, 0.95, 0.96, 0.98, 1.0,
               1.02, 1.08, 1.15, 1.18, 1.12, 1.02, 0.92, 0.86]
    stations = [(name, kv, district, round(rng.uniform(*_CAPACITY_MVA[kv]), 0), rng.uniform(0.4, 0.7))
                for name, kv, district in _SUBSTATIONS]
    state = {name: 0.0 for name, *_ in stations}
    rows: dict[str, list[Any]] = {k: [] for k in (
        "observed_at", "substation", "voltage_kv", "district", "capacity_mva", "load_mw", "load_ratio")}
    for day in _day_series(30, scale):
        season = 1.12 if day.month in (12, 1, 2) else (1.05 if day.month in (7, 8) else 1.0)
        for hour in range(24):
            at = datetime(day.year, day.month, day.day, hour)
            for name, kv, district, capacity, base in stations:
                state[name] = 0.85 * state[name] + rng.gauss(0, 0.03)
                shape = profile[hour] if kv == "110" else 0.9 + 0.1 * profile[hour]  # industry runs flat
                load = min(capacity * 0.98, capacity * base * shape * season * math.exp(state[name]))
                rows["observed_at"].append(at)
                rows["substation"].append(name)
                rows["voltage_kv"].append(kv)
                rows["district"].append(district)
                rows["capacity_mva"].append(capacity)
                rows["load_mw"].append(round(load, 1))
                rows["load_ratio"].append(round(load / capacity, 4))
    return pl.DataFrame(rows)
