"""Session fixtures: the synthetic products of ``tests.sandbox.products``, built once by real recipes."""

from __future__ import annotations

import polars as pl
import pytest

from marketplace.sandbox import BuiltVersion, build_version
from tests.sandbox.products import HASH_KEY, PEOPLE_RECIPE, buses_source, people_source


@pytest.fixture(scope="session")
def people_version(tmp_path_factory: pytest.TempPathFactory) -> BuiltVersion:
    built = build_version(
        PEOPLE_RECIPE, {"residents": people_source().lazy()}, tmp_path_factory.mktemp("people"), hash_key=HASH_KEY
    )
    return built


@pytest.fixture(scope="session")
def people(people_version: BuiltVersion) -> pl.DataFrame:
    return pl.read_parquet(people_version.path)


@pytest.fixture(scope="session")
def buses_version(tmp_path_factory: pytest.TempPathFactory) -> BuiltVersion:
    return build_version({"source": "buses", "steps": []}, {"buses": buses_source().lazy()},
                         tmp_path_factory.mktemp("buses"))


@pytest.fixture(scope="session")
def buses(buses_version: BuiltVersion) -> pl.DataFrame:
    return pl.read_parquet(buses_version.path)
