"""The synthetic Baotou data: deterministic bytes, schemas that match their specs, real
districts, linear scaling, content-addressed files (art. 3 kinds of public data; art. 12
grades; art. 35 personal fields flagged)."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.catalog import CatalogResource, FieldSpec, Grade, Openness, ProviderKind, UpdateFrequency
from domain.errors import InvalidInput
from domain.parties import validate_credit_code
from marketplace.bootstrap import Marketplace
from marketplace.demo import datasets as ds
from marketplace.demo.datasets import DATASETS, PROVIDERS, DatasetSpec, parquet_bytes, write_dataset
from tests.scenario import provider, staff

ROOT = Path(__file__).resolve().parents[2]
BAOTOU_DISTRICTS = {
    "昆都仑区", "青山区", "东河区", "九原区", "石拐区", "白云鄂博矿区", "稀土高新区", "土默特右旗",
    "固阳县", "达尔罕茂明安联合旗",
}
SPECS = list(DATASETS.values())
IDS = [s.key for s in SPECS]


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    return {spec.key: spec.generate(1.0, 0) for spec in SPECS}


def sha(df: pl.DataFrame) -> str:
    return hashlib.sha256(parquet_bytes(df)).hexdigest()


# -- the catalogue of datasets --------------------------------------------------------------
def test_art3_at_least_fifteen_datasets_of_public_service_kinds() -> None:
    assert len(DATASETS) >= 15
    kinds = {spec.provider_kind for spec in SPECS}
    assert {"water", "power", "gas", "public_transport", "health", "market_regulation"} <= kinds


def test_art12_some_datasets_are_important_or_not_open_so_rules_can_refuse() -> None:
    assert any(spec.grade == "important" for spec in SPECS)
    assert any(spec.openness == "not_open" for spec in SPECS)
    assert any(spec.grade.startswith("general") and spec.openness == "unconditional" for spec in SPECS)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_spec_is_complete(spec: DatasetSpec) -> None:
    assert spec.title_zh.strip() and spec.title_en.strip() and spec.description.strip()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in spec.title_zh), "the Chinese title has Chinese"
    assert spec.provider_key in PROVIDERS
    assert spec.provider_kind == PROVIDERS[spec.provider_key].kind
    assert spec.grade in ds.GRADES
    assert spec.openness in ds.OPENNESS
    assert spec.update_frequency in ds.UPDATE_FREQUENCIES
    assert spec.category.strip()
    for column in spec.columns:
        assert column.description.strip(), f"{spec.key}.{column.name} has no description"
        assert column.type in ds.COLUMN_TYPES


# -- schema ------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_schema_matches_spec(spec: DatasetSpec, frames: dict[str, pl.DataFrame]) -> None:
    df = frames[spec.key]
    assert tuple(df.columns) == spec.column_names
    expected = {
        "string": pl.String, "integer": pl.Int64, "float": pl.Float64, "boolean": pl.Boolean,
        "date": pl.Date, "datetime": pl.Datetime,
    }
    for column in spec.columns:
        dtype = df.schema[column.name]
        if column.type == "category":
            assert isinstance(dtype, pl.Enum)
            assert tuple(dtype.categories.to_list()) == column.values
        else:
            assert dtype == expected[column.type], f"{spec.key}.{column.name}"
        if not column.nullable:
            assert df[column.name].null_count() == 0, f"{spec.key}.{column.name} has nulls"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_art35_pseudonymised_ids_are_flagged_personal(spec: DatasetSpec) -> None:
    for column in spec.columns:
        if column.name.endswith("_hash") or "patient" in column.name or "complainant" in column.name:
            assert column.personal, f"{spec.key}.{column.name} identifies a person"


def test_art35_datasets_about_people_have_personal_columns() -> None:
    assert DATASETS["clinic_visits"].personal_columns == ("patient_hash",)
    assert DATASETS["heating_complaints"].personal_columns == ("complainant_hash",)
    assert DATASETS["clinic_visits"].grade == "general_4"  # sensitive health data: aggregates with DP noise


def test_column_spec_rejects_bad_declarations() -> None:
    with pytest.raises(InvalidInput) as e:
        ds.ColumnSpec("Bad Name", "string", "x")
    assert e.value.field == "name"
    with pytest.raises(InvalidInput) as e:
        ds.ColumnSpec("a", "decimal", "x")
    assert e.value.field == "type"
    with pytest.raises(InvalidInput) as e:
        ds.ColumnSpec("a", "string", "  ")
    assert e.value.field == "description"
    with pytest.raises(InvalidInput) as e:
        ds.ColumnSpec("a", "category", "x")
    assert e.value.field == "values"
    with pytest.raises(InvalidInput) as e:
        ds.ColumnSpec("a", "string", "x", values=("a",))
    assert e.value.field == "values"


def test_generator_output_not_matching_spec_is_refused() -> None:
    spec = DATASETS["water_use_monthly"]
    df = spec.generate(0.1, 0)
    with pytest.raises(InvalidInput, match="undeclared"):
        ds.conform(spec, df.with_columns(extra=pl.lit(1)))
    with pytest.raises(InvalidInput, match="missing"):
        ds.conform(spec, df.drop("volume_m3"))
    with pytest.raises(InvalidInput):
        ds.conform(spec, df.with_columns(pl.lit("火星").alias("district")))
    with pytest.raises(InvalidInput, match="nulls"):
        ds.check_frame(spec, df.with_columns(pl.lit(None, dtype=pl.Float64).alias("volume_m3")))


# -- districts and plausibility ------------------------------------------------------------------
def test_districts_are_the_ten_of_baotou() -> None:
    assert set(ds.DISTRICTS) == BAOTOU_DISTRICTS
    assert set(ds.POPULATION_10K) == BAOTOU_DISTRICTS
    assert set(ds.DIVISION_CODES) == BAOTOU_DISTRICTS


@pytest.mark.parametrize("spec", [s for s in SPECS if "district" in s.column_names],
                         ids=[s.key for s in SPECS if "district" in s.column_names])
def test_district_values_are_real(spec: DatasetSpec, frames: dict[str, pl.DataFrame]) -> None:
    values = set(frames[spec.key]["district"].cast(pl.String).unique().to_list())
    assert values <= BAOTOU_DISTRICTS
    assert len(values) >= 2


def test_bus_ridership_peaks_in_rush_hours_and_drops_at_weekends(frames: dict[str, pl.DataFrame]) -> None:
    df = frames["bus_ridership_hourly"].with_columns(hour=pl.col("service_hour").dt.hour())
    by_hour = dict(df.group_by("hour").agg(pl.col("boardings").mean()).iter_rows())
    assert by_hour[7] > by_hour[13] > by_hour[22]
    assert by_hour[17] > by_hour[14]
    by_weekend = dict(df.group_by("is_weekend").agg(pl.col("boardings").mean()).iter_rows())
    assert by_weekend[False] > by_weekend[True]
    assert (df["is_weekend"] == (df["service_hour"].dt.weekday() >= 6)).all()


def test_heating_season_raises_pm25_and_winter_raises_gas_use(frames: dict[str, pl.DataFrame]) -> None:
    air = frames["air_quality_hourly"]
    before = air.filter(pl.col("observed_at").dt.date() < date(2024, 10, 15))["pm25_ug_m3"].mean()
    during = air.filter(pl.col("observed_at").dt.month() == 12)["pm25_ug_m3"].mean()
    assert isinstance(before, float) and isinstance(during, float) and during > before * 1.3
    gas = frames["gas_use_monthly"].filter(pl.col("user_class") == "residential")
    winter = gas.filter(pl.col("month").dt.month() == 1)["volume_10k_m3"].sum()
    summer = gas.filter(pl.col("month").dt.month() == 7)["volume_10k_m3"].sum()
    assert isinstance(winter, float) and isinstance(summer, float) and winter > 1.5 * summer


def test_water_quality_flag_agrees_with_gb5749_limits(frames: dict[str, pl.DataFrame]) -> None:
    df = frames["water_quality_samples"]
    outlet = pl.col("station_type") == "waterworks_outlet"
    chlorine_ok = pl.when(outlet).then(pl.col("residual_chlorine_mg_l").is_between(0.3, 2.0)).otherwise(
        pl.col("residual_chlorine_mg_l") >= 0.05
    )
    ok = (pl.col("ph").is_between(6.5, 8.5) & (pl.col("turbidity_ntu") <= 1.0) & chlorine_ok
          & ~pl.col("total_coliform_detected"))
    assert (df.select(ok)["ph"] == df["meets_standard"]).all()
    assert 0.9 < df["meets_standard"].mean() < 1.0  # type: ignore[operator]


def test_credit_codes_are_valid_gb32100(frames: dict[str, pl.DataFrame]) -> None:
    for key in ("enterprise_registrations", "enterprise_credit_penalties"):
        for code in frames[key]["credit_code"].head(500):
            assert validate_credit_code(code) == code
    reg = frames["enterprise_registrations"]
    sample = reg.head(200).iter_rows(named=True)
    for row in sample:
        assert row["credit_code"][2:8] == ds.DIVISION_CODES[row["district"]]


def test_counts_are_never_negative_and_beds_never_overfull(frames: dict[str, pl.DataFrame]) -> None:
    for spec in SPECS:
        df = frames[spec.key]
        for column in spec.columns:
            if column.type == "integer":
                assert df[column.name].min() >= 0, f"{spec.key}.{column.name}"  # type: ignore[operator]
    beds = frames["hospital_bed_occupancy"]
    assert (beds["beds_occupied"] <= beds["beds_open"]).all()
    ss = frames["social_security_contributions"]
    assert (ss["insured_employees"] >= 0).all()


@given(st.floats(min_value=0, max_value=700, allow_nan=False), st.floats(min_value=0, max_value=700, allow_nan=False))
def test_iaqi_is_monotone_and_bounded(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    for breaks in (ds._PM25_BREAKS, ds._PM10_BREAKS, ds._NO2_BREAKS):
        assert 0 <= ds.iaqi(lo, breaks) <= ds.iaqi(hi, breaks) <= 500


def test_iaqi_hits_the_breakpoints() -> None:
    assert ds.iaqi(35, ds._PM25_BREAKS) == 50
    assert ds.iaqi(75, ds._PM25_BREAKS) == 100
    assert ds.iaqi(150, ds._PM10_BREAKS) == 100
    assert ds.iaqi(10_000, ds._NO2_BREAKS) == 500


# -- determinism ---------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_same_scale_and_seed_give_identical_parquet_bytes(spec: DatasetSpec, frames: dict[str, pl.DataFrame]) -> None:
    assert sha(spec.generate(1.0, 0)) == sha(frames[spec.key])


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_another_seed_gives_other_data(spec: DatasetSpec) -> None:
    assert sha(spec.generate(0.2, 1)) != sha(spec.generate(0.2, 2))


def test_bytes_do_not_depend_on_the_process_or_its_hash_seed() -> None:
    """Determinism across processes: catalog hashes registered today must match tomorrow."""
    script = (
        "import hashlib\n"
        "from marketplace.demo.datasets import DATASETS, parquet_bytes\n"
        "for k, s in DATASETS.items():\n"
        "    print(k, hashlib.sha256(parquet_bytes(s.generate(0.2, 7))).hexdigest())\n"
    )
    outputs = []
    for hash_seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                                text=True, check=True, timeout=120)
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    here = "".join(f"{k} {sha(s.generate(0.2, 7))}\n" for k, s in DATASETS.items())
    assert outputs[0] == here


# -- scaling -----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_scale_one_is_small_and_rows_grow_linearly(spec: DatasetSpec, frames: dict[str, pl.DataFrame]) -> None:
    one = frames[spec.key].height
    assert 1_000 <= one <= 50_000
    two = spec.generate(2.0, 0).height
    half = spec.generate(0.5, 0).height
    assert math.isclose(two / one, 2.0, rel_tol=0.05)
    assert math.isclose(half / one, 0.5, rel_tol=0.05)


@settings(max_examples=30, deadline=None)
@given(st.one_of(
    st.floats(max_value=0.0), st.floats(min_value=ds.MAX_SCALE, exclude_min=True),
    st.just(math.nan), st.just(math.inf), st.booleans(), st.text(max_size=3),
))
def test_bad_scale_is_refused_naming_scale(scale: object) -> None:
    with pytest.raises(InvalidInput) as e:
        DATASETS["water_use_monthly"].generate(scale, 0)  # type: ignore[arg-type]
    assert e.value.field == "scale"


@pytest.mark.parametrize("seed", [-1, 1.5, True, "0", None])
def test_bad_seed_is_refused_naming_seed(seed: object) -> None:
    with pytest.raises(InvalidInput) as e:
        DATASETS["water_use_monthly"].generate(1.0, seed)  # type: ignore[arg-type]
    assert e.value.field == "seed"


def test_unknown_dataset_key_is_refused() -> None:
    with pytest.raises(InvalidInput) as e:
        ds.generate("moon_rocks")
    assert e.value.field == "key"
    assert ds.generate("water_use_monthly", 0.1, 3).equals(DATASETS["water_use_monthly"].generate(0.1, 3))


# -- content-addressed files -----------------------------------------------------------------
def test_write_dataset_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    spec = DATASETS["bus_ridership_hourly"]
    df = spec.generate(0.3, 5)
    path, digest, rows = write_dataset(spec, df, tmp_path)
    assert path == tmp_path / f"{digest}.parquet"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert rows == df.height
    mtime = path.stat().st_mtime_ns
    again = write_dataset(spec, spec.generate(0.3, 5), tmp_path)
    assert again == (path, digest, rows)
    assert path.stat().st_mtime_ns == mtime, "the same content is not rewritten"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "no temporary files left"
    assert pl.read_parquet(path).equals(df)


def test_write_dataset_repairs_a_corrupted_file_of_the_same_name(tmp_path: Path) -> None:
    spec = DATASETS["water_use_monthly"]
    df = spec.generate(0.1, 0)
    path, digest, _ = write_dataset(spec, df, tmp_path)
    path.write_bytes(b"garbage")
    path2, digest2, _ = write_dataset(spec, df, tmp_path)
    assert (path2, digest2) == (path, digest)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_different_content_gets_a_different_file(tmp_path: Path) -> None:
    spec = DATASETS["water_use_monthly"]
    a = write_dataset(spec, spec.generate(0.1, 0), tmp_path)
    b = write_dataset(spec, spec.generate(0.1, 1), tmp_path)
    assert a[1] != b[1] and a[0] != b[0]
    assert len(list(tmp_path.iterdir())) == 2


def test_write_dataset_refuses_a_frame_that_does_not_match_its_spec(tmp_path: Path) -> None:
    spec = DATASETS["water_use_monthly"]
    df = DATASETS["gas_use_monthly"].generate(0.1, 0)
    with pytest.raises(InvalidInput) as e:
        write_dataset(spec, df, tmp_path / "out")
    assert e.value.field == "df"
    assert not (tmp_path / "out").exists()


# -- the catalog accepts what the generator describes -------------------------------------------
def test_art10_specs_use_the_catalog_vocabulary() -> None:
    for spec in SPECS:
        ProviderKind(spec.provider_kind)
        Grade(spec.grade)
        Openness(spec.openness)
        UpdateFrequency(spec.update_frequency)
        fields = [FieldSpec.parse(f) for f in spec.field_specs()]
        assert [f.personal for f in fields] == [c.personal for c in spec.columns]


def test_art10_every_dataset_is_catalogued_and_its_file_registered_as_a_version(
    marketplace: Marketplace, tmp_path: Path
) -> None:
    people = staff(marketplace)
    for spec in SPECS:
        demo = spec.provider
        provider_id, clerk = provider(marketplace, people, name=demo.name_zh, kind=demo.kind,
                                      staff_user=f"{demo.key}-clerk")
        resource_id = marketplace.catalog.compile_resource(
            clerk, provider_id=provider_id, name=spec.title, description=spec.description, category=spec.category,
            fields=spec.field_specs(), grade=spec.grade, openness=spec.openness,
            update_frequency=spec.update_frequency,
        )
        marketplace.catalog.review_resource(people.supervisor, resource_id, approved=True, reason="complete entry")
        df = spec.generate(0.1, 0)
        path, digest, rows = write_dataset(spec, df, tmp_path)
        read_back = pl.read_parquet(path)
        schema = {name: spec.column(name).type for name in read_back.columns}
        marketplace.catalog.register_resource_version(clerk, resource_id, content_hash=digest, row_count=rows,
                                                      schema=schema)
        resource = marketplace.catalog.get(CatalogResource, resource_id)
        assert resource.latest_version is not None and resource.latest_version.content_hash == digest
        assert resource.personal_fields == spec.personal_columns
