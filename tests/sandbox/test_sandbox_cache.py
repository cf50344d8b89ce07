"""The sandbox's caches change no answer: grouped results, parsed and validated queries, marks (art. 8, 22, 23).

A version's grouped result is reused only for the same version (content hash) and the same
grouping plan; every output control still runs on every query (suppression, tiny-filter
defence, budget, noise, watermark), so answers from the cache equal fresh answers, and a
query that is refused is refused every time.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketplace.sandbox import BudgetExhausted, BuiltVersion, PolicyViolation, run_query
from marketplace.sandbox.cache import BoundedCache
from marketplace.sandbox.execute import GroupedCache, VersionData
from marketplace.sandbox.policy import validate
from marketplace.sandbox.query import QueryError, parse, parse_json
from marketplace.sandbox.watermark import mark_float, mark_int, mark_key, mark_series
from tests.sandbox.products import SECRET, TINY_DISTRICT, bus_policy, context, people_policy

BY_DISTRICT = {"dimensions": ["district"], "aggregates": [
    {"fn": "count", "alias": "n"}, {"fn": "mean", "column": "income", "alias": "m"},
    {"fn": "count_distinct", "column": "person_id", "alias": "persons"}]}


def answer(result: Any) -> tuple[Any, ...]:
    """Everything a client receives: the rows (with their types) and the metadata."""
    return (result.frame.schema, result.frame.rows(), result.metadata())


@pytest.fixture
def cached_people(people_version: BuiltVersion) -> VersionData:
    return VersionData(pl.read_parquet(people_version.path), people_version.content_hash, GroupedCache())


@pytest.fixture
def cached_buses(buses_version: BuiltVersion) -> VersionData:
    return VersionData(pl.read_parquet(buses_version.path), buses_version.content_hash, GroupedCache())


def test_art22_a_cached_grouping_gives_the_very_answer_a_fresh_scan_gives(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    fresh = run_query(BY_DISTRICT, people_policy(), pl.scan_parquet(people_version.path), context(people_version))
    first = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version))
    again = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version))
    assert cached_people.cache.misses == 1 and cached_people.cache.hits == 1
    assert answer(first) == answer(again) == answer(fresh)


def test_art22_the_same_noisy_answer_before_and_after_the_cache_is_emptied(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    before = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version, "sub-x"))
    cached_people.cache.clear()
    after = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version, "sub-x"))
    assert cached_people.cache.misses == 2
    assert answer(before) == answer(after)
    assert before.noise == "perturbation"


def test_art22_an_evicted_grouping_is_computed_again_with_the_same_answer(
    people_version: BuiltVersion,
) -> None:
    tiny = GroupedCache(max_bytes=1)  # nothing fits: every query is a miss
    data = VersionData(pl.read_parquet(people_version.path), people_version.content_hash, tiny)
    first = run_query(BY_DISTRICT, people_policy(), data, context(people_version))
    second = run_query(BY_DISTRICT, people_policy(), data, context(people_version))
    assert len(tiny) == 0 and tiny.misses == 2
    assert answer(first) == answer(second)


def test_art23_subscriptions_share_groupings_but_never_noise_or_watermark(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    a = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version, "sub-a"))
    b = run_query(BY_DISTRICT, people_policy(), cached_people, context(people_version, "sub-b"))
    assert cached_people.cache.hits == 1  # one grouping served both
    assert a.watermark_id != b.watermark_id
    assert a.frame["n"].to_list() != b.frame["n"].to_list()  # each subscription has its own noise


def test_art22_a_new_version_is_never_answered_from_the_old_versions_groups(
    buses_version: BuiltVersion, buses: pl.DataFrame
) -> None:
    shared = GroupedCache()
    old = VersionData(buses, buses_version.content_hash, shared)
    doubled = pl.concat([buses, buses])
    new = VersionData(doubled, "f" * 64, shared)  # another content hash
    query = {"aggregates": [{"fn": "count"}]}
    assert run_query(query, bus_policy(), old, context(buses_version)).frame["count"].to_list() == [buses.height]
    assert run_query(query, bus_policy(), new, context(buses_version)).frame["count"].to_list() == [doubled.height]
    assert shared.hits == 0 and shared.misses == 2 and shared.release_hits == 0


@pytest.mark.parametrize(("one", "other"), [(1, 1.5), (True, False), ("L1", "L2")])
def test_art8_filters_that_differ_only_in_value_never_share_a_grouping(
    one: object, other: object, buses_version: BuiltVersion, cached_buses: VersionData, buses: pl.DataFrame
) -> None:
    column = {int: "riders", float: "riders", bool: "weekend", str: "line"}[type(one)]
    for value in (one, other):
        query = {"aggregates": [{"fn": "count"}], "filters": [{"column": column, "op": "eq", "value": value}]}
        got = run_query(query, bus_policy(), cached_buses, context(buses_version)).frame["count"].to_list()
        assert got == [buses.filter(pl.col(column) == value).height], (column, value)


def test_art8_a_true_filter_and_a_one_filter_are_different_questions(
    buses_version: BuiltVersion, cached_buses: VersionData
) -> None:
    boolean = {"aggregates": [{"fn": "count"}], "filters": [{"column": "weekend", "op": "eq", "value": True}]}
    run_query(boolean, bus_policy(), cached_buses, context(buses_version))
    number = {"aggregates": [{"fn": "count"}], "filters": [{"column": "weekend", "op": "eq", "value": 1}]}
    with pytest.raises(QueryError, match="true or false"):  # 1 == True in Python: no cache may confuse them
        run_query(json.dumps(number), bus_policy(), cached_buses, context(buses_version))


def test_art22_a_repeated_question_gets_the_kept_release_and_the_same_after_it_is_forgotten(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    policy, text = people_policy(), json.dumps(BY_DISTRICT)  # the API's path: the same text, the same policy
    first = run_query(text, policy, cached_people, context(people_version, "sub-r"))
    again = run_query(text, policy, cached_people, context(people_version, "sub-r"))
    other = run_query(text, policy, cached_people, context(people_version, "sub-s"))
    assert cached_people.cache.release_hits == 1  # "sub-s" got its own release (own noise, own mark)
    assert answer(first) == answer(again) and answer(other) != answer(first)
    cached_people.cache.clear()
    assert answer(run_query(text, policy, cached_people, context(people_version, "sub-r"))) == answer(first)


def test_art22_the_tiny_filter_defence_refuses_on_every_ask_even_when_groups_are_cached(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    policy = people_policy()
    query = json.dumps({"aggregates": [{"fn": "count"}],
                        "filters": [{"column": "district", "op": "eq", "value": TINY_DISTRICT}]})
    for _ in range(3):
        with pytest.raises(PolicyViolation) as info:
            run_query(query, policy, cached_people, context(people_version))
        assert info.value.rule == "min_population"
    assert cached_people.cache.hits == 2 and cached_people.cache.release_hits == 0  # a refusal is never kept


def test_art22_an_exhausted_budget_refuses_although_the_answer_is_kept(
    people_version: BuiltVersion, cached_people: VersionData
) -> None:
    assert cached_people.cache is not None
    policy = people_policy("general_4")
    query = json.dumps({"dimensions": ["district"], "aggregates": [{"fn": "count"}]})
    kept = run_query(query, policy, cached_people, context(people_version, budget=5.0))
    assert answer(run_query(query, policy, cached_people, context(people_version, budget=5.0)))[1] == kept.frame.rows()
    assert cached_people.cache.release_hits == 1
    with pytest.raises(BudgetExhausted):
        run_query(query, policy, cached_people, context(people_version, budget=0.5))


QUERIES = st.fixed_dictionaries({
    "dimensions": st.lists(st.sampled_from(["line", "stop", "weekend"]), max_size=2, unique=True),
    "aggregates": st.lists(st.sampled_from([
        {"fn": "count"}, {"fn": "sum", "column": "riders"}, {"fn": "mean", "column": "fare"},
        {"fn": "max", "column": "fare"}, {"fn": "quantile", "column": "fare", "q": 0.5},
        {"fn": "count_distinct", "column": "stop"},
    ]), min_size=1, max_size=3, unique_by=repr),
    "filters": st.lists(st.one_of(
        st.fixed_dictionaries({"column": st.just("riders"), "op": st.sampled_from(["gt", "lte", "eq"]),
                               "value": st.one_of(st.integers(0, 60), st.floats(0, 60, allow_nan=False))}),
        st.fixed_dictionaries({"column": st.just("line"), "op": st.just("in"),
                               "value": st.lists(st.sampled_from(["L1", "L2", "L3", "L4"]), min_size=1)}),
        st.fixed_dictionaries({"column": st.just("weekend"), "op": st.just("eq"), "value": st.booleans()}),
    ), max_size=2),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queries=st.lists(QUERIES, min_size=1, max_size=6))
def test_art8_any_sequence_of_queries_answers_as_without_caches(
    queries: list[dict[str, Any]], buses_version: BuiltVersion, buses: pl.DataFrame
) -> None:
    data = VersionData(buses, buses_version.content_hash, GroupedCache())
    for query in queries * 2:  # each query twice: the second time its grouping is cached
        outcomes: list[Any] = []
        for frame in (data, buses):  # the cached version, then the plain frame (no cache at all)
            try:
                outcomes.append(answer(run_query(query, bus_policy(), frame, context(buses_version))))
            except (PolicyViolation, QueryError) as error:
                outcomes.append((type(error), str(error)))
        assert repr(outcomes[0]) == repr(outcomes[1]), query


def test_art8_parsing_the_same_text_twice_gives_the_same_query_and_errors_every_time() -> None:
    text = json.dumps({"dimensions": ["line"], "aggregates": [{"fn": "count"}]})
    assert parse_json(text) is parse_json(text) and parse_json(text) == parse(json.loads(text))
    assert parse_json(text.encode()) == parse_json(text)
    for _ in range(2):
        with pytest.raises(QueryError):
            parse_json('{"aggregates": []}')


def test_art22_validation_is_per_policy_even_for_the_same_query() -> None:
    query = parse_json('{"dimensions": ["stop"], "aggregates": [{"fn": "count"}]}')
    exact = validate(query, bus_policy())
    assert validate(query, bus_policy()).measures == exact.measures == ()
    noisy = validate(parse_json('{"dimensions": ["district"], "aggregates": [{"fn": "count"}]}'), people_policy())
    assert noisy.measures  # general_3 draws noise
    for _ in range(2):
        with pytest.raises(PolicyViolation):
            validate(parse_json('{"dimensions": ["person_id"], "aggregates": [{"fn": "count"}]}'), people_policy())


@given(values=st.lists(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True,
                                                                      width=64)), max_size=30))
def test_art34_memoised_marks_equal_marks_computed_afresh(values: list[int | float]) -> None:
    key = mark_key(SECRET, "sub-memo")
    ints = [v for v in values if isinstance(v, int)]
    floats = [float(v) for v in values]  # the same numbers as floats: 3 and 3.0 are marked differently
    for _ in range(2):  # the second pass is served from the memo
        assert mark_series(pl.Series("i", ints, dtype=pl.Int64), key).to_list() == [mark_int(v, key) for v in ints]
        got = mark_series(pl.Series("f", floats, dtype=pl.Float64), key).to_list()
        expected: dict[float, float] = {}
        want = [expected.setdefault(v, mark_float(v, key)) for v in floats]
        assert [repr(g) for g in got] == [repr(w) for w in want]


def test_lru_keeps_at_most_its_size_and_drops_the_oldest_first() -> None:
    cache: BoundedCache[int, str] = BoundedCache(2)
    cache.put(1, "a")
    cache.put(2, "b")
    cache.put(3, "c")
    assert len(cache) == 2 and cache.get(1) is None and cache.get(3) == "c"
    with pytest.raises(ValueError):
        BoundedCache(0)
