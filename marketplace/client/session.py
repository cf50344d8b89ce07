"""The SDK's connection: client-credentials tokens, requests, errors, results.

Tokens are fetched from ``/oauth/token`` with the workspace's client id and secret and
refreshed before they expire (and once more if the API reports ``token_expired``), so a
notebook left open over lunch keeps working. Every refusal becomes a specific exception
(``marketplace.client.errors``). The SDK speaks HTTP only: it never opens the store.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

import httpx
import polars as pl

from marketplace.client.arrow import ACCEPT_ARROW, is_arrow, read_frame
from marketplace.client.config import WorkspaceConfig, load_config
from marketplace.client.display import Entitlements, ProductInfo, Usage, _table
from marketplace.client.errors import (
    NotEntitled,
    ResultUnreadable,
    ShuyunError,
    SubscriptionInactive,
    from_problem,
)
from marketplace.client.query import QueryBuilder
from marketplace.client.transport import with_large_reads

#: refresh this many seconds before the token's expiry, so a request never races it
REFRESH_MARGIN = 30.0


@dataclass(frozen=True)
class QueryMeta:
    """What the platform recorded about a query (from the response headers)."""

    use_id: str
    rows_out: int
    epsilon_spent: float
    watermark: str
    product_version: str
    suppressed_groups: int | None
    queries_left: int | None
    rows_left: int | None
    budget_left: float | None
    resets_on: date | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> QueryMeta:
        def num(key: str, kind: Callable[[str], Any]) -> Any:
            value = headers.get(key)
            if value in (None, "", "None"):
                return None
            try:
                return kind(value)
            except ValueError:
                return None

        return cls(
            use_id=headers.get("x-shuyun-use-id", ""), rows_out=num("x-shuyun-rows-out", int) or 0,
            epsilon_spent=num("x-shuyun-epsilon-spent", float) or 0.0,
            watermark=headers.get("x-shuyun-watermark", ""),
            product_version=headers.get("x-shuyun-product-version", ""),
            suppressed_groups=num("x-shuyun-suppressed-groups", int),
            queries_left=num("x-shuyun-remaining-queries", int), rows_left=num("x-shuyun-remaining-rows", int),
            budget_left=num("x-shuyun-remaining-budget", float),
            resets_on=num("x-shuyun-quota-resets", date.fromisoformat),
        )


@dataclass(frozen=True)
class QueryResult:
    frame: pl.DataFrame
    meta: QueryMeta
    query: dict[str, Any]

    def _repr_html_(self) -> str:
        m = self.meta
        note = _table(
            ["rows", "epsilon spent", "suppressed groups", "queries left", "budget left", "watermark"],
            [[m.rows_out, m.epsilon_spent, m.suppressed_groups, m.queries_left, m.budget_left, m.watermark]],
        )
        return note + self.frame._repr_html_()


class Client:
    """A connection to the marketplace API as one unit member's workspace client."""

    def __init__(
        self,
        config: WorkspaceConfig,
        *,
        http: httpx.Client | None = None,
        timeout: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = http or with_large_reads(httpx.Client(base_url=config.api_url, timeout=timeout))
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self._products: dict[str, str] | None = None
        self.last_result: QueryResult | None = None

    # -- tokens ---------------------------------------------------------------------------------
    def token(self, *, force: bool = False) -> str:
        """A valid access token, fetched or refreshed when needed."""
        with self._lock:
            if force or self._token is None or self._clock() >= self._expires_at - REFRESH_MARGIN:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _fetch_token(self) -> None:
        secret = self.config.secret()
        try:
            response = self._http.post(
                "/oauth/token", data={"grant_type": "client_credentials"}, auth=(self.config.client_id, secret)
            )
        except httpx.HTTPError as error:
            raise ShuyunError(f"cannot reach the marketplace API at {self.config.api_url}: {error}",
                              code="unreachable") from None
        if response.status_code != 200:
            refusal = from_problem(response.status_code, _json(response))
            if refusal.code == "invalid_scope" and not isinstance(refusal, SubscriptionInactive):
                refusal = self._why_no_scope(secret) or refusal
            raise refusal
        body = response.json()
        self._token = str(body["access_token"])
        self._expires_at = self._clock() + float(body.get("expires_in", 300))

    def _why_no_scope(self, secret: str) -> ShuyunError | None:
        """None of the client's subscriptions is usable: ask for each to learn why (expired, suspended)."""
        for subscription in self.config.subscriptions:
            response = self._http.post(
                "/oauth/token", data={"grant_type": "client_credentials", "scope": subscription},
                auth=(self.config.client_id, secret),
            )
            if response.status_code != 200:
                found = from_problem(response.status_code, _json(response))
                if isinstance(found, SubscriptionInactive):
                    return found
        return None

    # -- requests ---------------------------------------------------------------------------------
    def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, content: bytes | None = None,
        accept: str = "application/json", product: str | None = None, stream: bool = False,
    ) -> httpx.Response:
        """One authorised request; a ``token_expired`` answer is retried once with a fresh token.

        With ``stream=True`` a successful response comes back with its body unread (read it
        with ``iter_bytes``/``read`` and ``close`` it); refusals are read and raised as usual.
        """
        for attempt in (0, 1):
            headers = {"Authorization": f"Bearer {self.token(force=attempt == 1)}", "Accept": accept}
            if content is not None:
                headers["Content-Type"] = "application/json"
            try:
                request = self._http.build_request(method, path, params=params, content=content, headers=headers)
                response = self._http.send(request, stream=stream)
            except httpx.HTTPError as error:
                raise ShuyunError(f"cannot reach the marketplace API at {self.config.api_url}: {error}",
                                  code="unreachable") from None
            if response.status_code < 400:
                return response
            if stream:
                try:
                    response.read()
                except httpx.HTTPError as error:
                    raise ShuyunError(f"the API's refusal could not be read: {error}", code="unreachable",
                                      status=response.status_code) from None
                finally:
                    response.close()
            body = _json(response)
            if attempt == 0 and response.status_code == 401 and body.get("code") == "token_expired":
                continue
            raise from_problem(response.status_code, body, product=product)
        raise AssertionError("unreachable")

    # -- the API ----------------------------------------------------------------------------------
    def entitlements(self) -> Entitlements:
        """The unit's subscriptions this workspace may use, with what is left this month."""
        ents = Entitlements(self.request("GET", "/v1/entitlements").json())
        self._products = {e.product_name: e.product_id for e in ents}
        return ents

    def product_id(self, product: str) -> str:
        """A product id from an id or (part of) a product name among the entitlements."""
        try:
            return str(UUID(product))
        except ValueError:
            pass
        if self._products is None:
            self.entitlements()
        assert self._products is not None
        wanted = product.casefold()
        exact = [pid for name, pid in self._products.items() if name.casefold() == wanted]
        matches = exact or [pid for name, pid in self._products.items() if wanted in name.casefold()]
        if len(set(matches)) == 1:
            return matches[0]
        if not matches:
            raise NotEntitled(
                f"no product named like {product!r} among this workspace's entitlements: "
                f"{', '.join(sorted(self._products)) or 'none'}", product=product, code="not_entitled",
            )
        raise ShuyunError(f"{product!r} matches several products; use more of the name or the id",
                          code="ambiguous_product")

    def describe(self, product: str, *, subscription_id: str | None = None) -> ProductInfo:
        """Data dictionary, policy (group-by columns, aggregates, minimum group size) and what is left."""
        pid = self.product_id(product)
        params = {"subscription": subscription_id} if subscription_id else None
        return ProductInfo(self.request("GET", f"/v1/products/{pid}", params=params, product=pid).json())

    def usage(self) -> Usage:
        """This month's use, refusals and remaining quotas and privacy budgets per subscription."""
        names = {e.subscription_id: e.product_name for e in self.entitlements()}
        return Usage(self.request("GET", "/v1/usage").json(), names)

    budgets = usage

    def query(self, product: str, *, subscription_id: str | None = None) -> QueryBuilder:
        return QueryBuilder(self, self.product_id(product), subscription_id)

    def run_query(
        self, product_id: str, query: Mapping[str, Any], *, subscription_id: str | None = None
    ) -> QueryResult:
        """Send a sandbox query; the result is decoded from the Arrow stream as it arrives.

        The SDK asks for narrowed columns and compressed IPC buffers (``ACCEPT_ARROW``: the
        API compresses only where it pays); an API that ignores the request sends a plain
        stream, read the same way.
        """
        body = json.dumps(query, ensure_ascii=False, allow_nan=False).encode()
        params = {"subscription": subscription_id} if subscription_id else None
        response = self.request("POST", f"/v1/products/{product_id}/query", params=params, content=body,
                                accept=ACCEPT_ARROW, product=product_id, stream=True)
        try:
            meta = QueryMeta.from_headers(response.headers)
            if is_arrow(response.headers.get("content-type", "")):
                expected = meta.rows_out if "x-shuyun-rows-out" in response.headers else None
                frame = read_frame(response.iter_bytes(), expected_rows=expected, use_id=meta.use_id)
            else:
                response.read()
                data = response.json()
                frame = pl.DataFrame(data["rows"], schema=data["columns"], orient="row")
        except httpx.HTTPError as error:  # a JSON body cut short (Arrow bodies raise ResultUnreadable themselves)
            raise ResultUnreadable(f"the result could not be read: {error}; the query was metered, running it "
                                   "again counts again", code="result_truncated", use_id=meta.use_id) from None
        finally:
            response.close()
        result = QueryResult(frame, meta, dict(query))
        self.last_result = result
        return result

    def record_workspace_event(
        self, event: str, *, session: str, sequence: int, subscription: str | None = None,
        kernel_id: str | None = None, kernel_name: str | None = None, seconds: float | None = None,
        path: str | None = None,
    ) -> dict[str, Any]:
        """Report workspace time (``POST /v1/workspace/sessions``): opened, kernel started/ended, closed.

        What the workspace's Jupyter server extension calls; it is recorded on the unit's
        ledger as the member's ``workspace_session`` use (time, not a query). ``session`` and
        ``sequence`` identify the event, so resending it after a failure is safe.
        """
        payload: dict[str, Any] = {"event": event, "session": session, "sequence": sequence}
        optional = {"subscription": subscription, "kernel_id": kernel_id, "kernel_name": kernel_name,
                    "seconds": seconds, "path": path}
        payload.update({k: v for k, v in optional.items() if v is not None})
        body = json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()
        data: dict[str, Any] = self.request("POST", "/v1/workspace/sessions", content=body).json()
        return data

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<shuyun client {self.config.member or self.config.client_id} at {self.config.api_url}>"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"detail": response.text[:500] or f"HTTP {response.status_code}"}
    return body if isinstance(body, dict) else {"detail": str(body)}


def connect(config_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Client:
    """Connect with the workspace's credentials (``$SHUYUN_WORKSPACE_CONFIG`` unless a path is given)."""
    return Client(load_config(config_path), **kwargs)
