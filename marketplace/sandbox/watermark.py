"""Per-subscription watermarks in sandbox results, and tracing a leaked result back.

Art. 23 forbids passing data on; art. 34 punishes leaks. To name the subscription a
leaked result came from, every released number carries a keyed mark that costs the
analyst nothing: the sandbox chooses *between two equally valid roundings*.

* Noisy integers (perturbed or differentially private counts and integer sums): among
  the two neighbours ``2j`` and ``2j + 1`` the mark picks the one whose parity is a
  keyed bit of ``j``. The shift is at most one, far inside the noise (and, being
  post-processing of a noisy value with an independent key, it costs no privacy).
* Floats (sums, means, quantiles, row values): the value is written with 12
  significant digits, and the 12th digit's parity is the keyed bit. A relative change
  of at most 1e-11 — below any meaningful precision of public statistics.

The bit is HMAC-SHA256(key of the subscription, the value with its last bit removed),
so the mark needs nothing but the numbers themselves: no column names, no row order,
no metadata. It survives CSV, JSON, Parquet and Arrow round trips (all keep numbers
exactly: shortest round-trip float printing), renamed or reordered columns, sorting
and row subsets. It does not survive rounding below 12 significant digits (floats) or
adding fresh noise; exact integers (counts of open general_1/2 data) carry no mark.

``trace`` counts, for each candidate subscription, how many observed bits match its
key. For a subscription that did not produce the result, each distinct observation
matches with probability exactly 1/2 independently (HMAC as a random function), so the
number of matches is Binomial(N, 1/2): the reported p-value is that exact tail,
multiplied by the number of candidates (Bonferroni). A result is attributed only when
that bound is below ``alpha`` (default 1e-6): a false accusation is that unlikely.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from marketplace.sandbox.cache import BoundedCache

#: significant digits of marked floats; the mark is the last digit's parity
MARK_DIGITS = 12
_LOW = 10 ** (MARK_DIGITS - 1)
_HIGH = 10**MARK_DIGITS
#: below this, scaling to 12 digits needs a power of ten no float can hold (subnormal numbers)
_TINY = 1e-290
#: integral floats below this are also read as integers (a JSON tool may turn 41 into 41.0)
_SAFE_INT = 2**53
#: observations used by ``trace`` at most (chosen by hash of the label, independent of any key)
MAX_OBSERVATIONS = 4096
DEFAULT_ALPHA = 1e-6


@lru_cache(maxsize=4096)
def mark_key(secret: bytes, subscription_id: str) -> bytes:
    """The subscription's marking key (derived, so one platform secret serves all)."""
    return hmac.digest(secret, f"shuyun/watermark\x00{subscription_id}".encode(), hashlib.sha256)


@lru_cache(maxsize=4096)
def watermark_id(secret: bytes, subscription_id: str) -> str:
    """A short public name of the mark, safe to record in usage events and headers."""
    return hmac.digest(mark_key(secret, subscription_id), b"id", hashlib.sha256).hex()[:16]


def _bit(key: bytes, label: str) -> int:
    return int(hmac.digest(key, label.encode(), hashlib.sha256)[0] & 1)


# --- integers ----------------------------------------------------------------------------


def _int_label(j: int) -> str:
    return f"i:{j}"


def mark_int(value: int, key: bytes) -> int:
    """``2j`` or ``2j + 1`` (j = value // 2), whichever carries the keyed bit of j."""
    j = value // 2
    return 2 * j + _bit(key, _int_label(j))


# --- floats ------------------------------------------------------------------------------


def _scaled(magnitude: float, s: int) -> int:
    power: int = 10 ** abs(s)
    return round(magnitude * power) if s <= 0 else round(magnitude / power)


def float_parts(value: float) -> tuple[int, int] | None:
    """``(s, n)`` with value ~= n * 10**s and 10**11 <= |n| < 10**12, or None (0, nan, inf, and
    magnitudes below ``_TINY``, whose scale 10**-s is beyond a float: they stay unmarked)."""
    if value == 0 or not math.isfinite(value):
        return None
    magnitude = abs(value)
    if magnitude < _TINY:
        return None
    s = math.floor(math.log10(magnitude)) - (MARK_DIGITS - 1)
    for _ in range(4):
        n = _scaled(magnitude, s)
        if n >= _HIGH:
            s += 1
        elif n < _LOW:
            s -= 1
        else:
            return s, n if value > 0 else -n
    return None


def _compose(s: int, n: int) -> float:
    power: int = 10 ** abs(s)
    return n / power if s <= 0 else float(n * power)


def _float_label(s: int, n: int) -> str:
    sign = "-" if n < 0 else "+"
    return f"f:{s}:{sign}:{abs(n) >> 1}"


def mark_float(value: float, key: bytes) -> float:
    """The 12-significant-digit rounding of ``value`` whose last digit has the keyed parity."""
    parts = float_parts(value)
    if parts is None:
        return value
    s, n = parts
    magnitude = abs(n)
    marked = (magnitude >> 1) * 2 + _bit(key, _float_label(s, n))
    result = _compose(s, marked if n > 0 else -marked)
    if float_parts(result) != (s, marked if n > 0 else -marked):
        return value  # float rounding at the edge of a decade: leave this one unmarked
    return result


# --- frames ------------------------------------------------------------------------------


#: Marks already computed, by (key, kind, value): a value is marked the same way every time,
#: and the same results are released again and again (a repeated query, a cached grouping),
#: so a mark costs a dictionary lookup instead of an HMAC and two decimal decompositions.
#: The kind keeps integers and floats apart (``3 == 3.0``, but they are marked differently),
#: and only non-zero finite floats are kept, where equality is identity of the value
#: (``0.0 == -0.0`` is not).
_MARKS: BoundedCache[tuple[bytes, str, int | float], int | float] = BoundedCache(16_384)


def _mark_int_memo(value: int, key: bytes) -> int:
    found = _MARKS.get((key, "i", value))
    if found is None:
        found = mark_int(value, key)
        _MARKS.put((key, "i", value), found)
    return int(found)


def _mark_float_memo(value: float, key: bytes) -> float:
    if value == 0 or not math.isfinite(value):
        return mark_float(value, key)
    found = _MARKS.get((key, "f", value))
    if found is None:
        found = mark_float(value, key)
        _MARKS.put((key, "f", value), found)
    return float(found)


def mark_series(series: pl.Series, key: bytes) -> pl.Series:
    """Mark every value of an integer or float column (nulls stay null)."""
    dtype = series.dtype
    if dtype.is_integer():
        marked_values: list[int | float | None] = [
            None if v is None else _mark_int_memo(int(v), key) for v in series.to_list()
        ]
        return pl.Series(series.name, marked_values, dtype=pl.Int64)
    if dtype.is_float():
        cache: dict[float, float] = {}
        out: list[float | None] = []
        for v in series.to_list():
            if v is None:
                out.append(None)
                continue
            if v not in cache:
                cache[v] = _mark_float_memo(float(v), key)
            out.append(cache[v])
        return pl.Series(series.name, out, dtype=pl.Float64)
    raise TypeError(f"cannot mark a column of type {dtype}")


def mark_frame(frame: pl.DataFrame, key: bytes, columns: Iterable[str]) -> pl.DataFrame:
    """Mark the named numeric columns of ``frame``."""
    names = set(columns)
    if not names:
        return frame
    # Column by column: ``with_columns`` would plan and collect a query for a few values.
    return pl.DataFrame([mark_series(s, key) if s.name in names else s for s in frame.iter_columns()])


# --- tracing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceResult:
    """Who most likely leaked a result, and how sure that is.

    ``subscription_id`` is set only when the Bonferroni-corrected p-value is at most
    ``alpha``; ``confidence`` is 1 minus that p-value. ``scores`` maps each candidate
    to its share of matching bits (about 0.5 for anyone who did not leak).
    """

    subscription_id: str | None
    best_candidate: str | None
    confidence: float
    p_value: float
    matches: int
    observations: int
    scores: dict[str, float]


def observations(frame: pl.DataFrame) -> dict[str, int]:
    """Label -> observed bit for every distinct number in ``frame`` that could carry a mark."""
    seen: dict[str, int] = {}
    conflicted: set[str] = set()

    def note(label: str, bit: int) -> None:
        if label in conflicted:
            return
        previous = seen.get(label)
        if previous is None:
            seen[label] = bit
        elif previous != bit:  # two values share a label: at most one of them is marked
            del seen[label]
            conflicted.add(label)

    for name in frame.columns:
        series = frame[name]
        if series.dtype == pl.String:
            parsed = series.str.strip_chars().cast(pl.Float64, strict=False)
            if parsed.null_count() > series.null_count():
                continue  # not a column of numbers
            series = parsed
        if series.dtype.is_integer():
            for v in series.drop_nulls().unique().to_list():
                note(_int_label(int(v) // 2), int(v) & 1)
        elif series.dtype.is_float():
            for v in series.drop_nulls().unique().to_list():
                value = float(v)
                parts = float_parts(value)
                if parts is not None:
                    s, n = parts
                    note(_float_label(s, n), abs(n) & 1)
                if math.isfinite(value) and value.is_integer() and abs(value) < _SAFE_INT:
                    note(_int_label(int(value) // 2), int(value) & 1)
    return seen


def binomial_tail(n: int, k: int) -> float:
    """P[Binomial(n, 1/2) >= k], exact."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    total = sum(math.comb(n, i) for i in range(k, n + 1))
    return math.exp(math.log(total) - n * math.log(2)) if total else 0.0


def trace(
    result_frame: pl.DataFrame,
    candidates: Sequence[str],
    secret: bytes,
    *,
    alpha: float = DEFAULT_ALPHA,
) -> TraceResult:
    """Name the candidate subscription whose mark ``result_frame`` carries, if the evidence suffices."""
    observed = observations(result_frame)
    labels = sorted(observed, key=lambda lb: hashlib.sha256(lb.encode()).digest())[:MAX_OBSERVATIONS]
    n = len(labels)
    unique_candidates = list(dict.fromkeys(candidates))
    if n == 0 or not unique_candidates:
        return TraceResult(None, None, 0.0, 1.0, 0, n, {c: 0.0 for c in unique_candidates})
    matches: dict[str, int] = {}
    for candidate in unique_candidates:
        key = mark_key(secret, candidate)
        matches[candidate] = sum(1 for lb in labels if _bit(key, lb) == observed[lb])
    best = max(unique_candidates, key=lambda c: matches[c])
    p_value = min(1.0, binomial_tail(n, matches[best]) * len(unique_candidates))
    return TraceResult(
        subscription_id=best if p_value <= alpha else None,
        best_candidate=best,
        confidence=1.0 - p_value,
        p_value=p_value,
        matches=matches[best],
        observations=n,
        scores={c: matches[c] / n for c in unique_candidates},
    )


def read_leak(path: str | Path) -> pl.DataFrame:
    """Read a leaked result in whatever format it was found (CSV, Parquet, JSON, NDJSON, Arrow)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix == ".parquet":
        return pl.read_parquet(file)
    if suffix in (".arrow", ".ipc", ".feather"):
        return pl.read_ipc(file)
    if suffix in (".ndjson", ".jsonl"):
        return pl.read_ndjson(file)
    if suffix == ".json":
        return pl.read_json(file)
    return pl.read_csv(file, infer_schema_length=None)
