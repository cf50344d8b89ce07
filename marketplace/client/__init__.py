"""``marketplace.client``: the notebook SDK of Shuyun.

    from marketplace.client import connect
    sy = connect()                       # the workspace's credentials, nothing else to set up
    sy.entitlements()                    # what the unit may use, what is left this month
    sy.describe("Bus ridership")         # data dictionary and policy
    sy.query("Bus ridership").group_by("district").agg(boardings=("sum", "boardings")).collect()

It speaks HTTP to the marketplace API only (every call is metered server-side) and never
touches the database.
"""

from marketplace.client.config import ConfigError, WorkspaceConfig, load_config
from marketplace.client.display import Entitlement, Entitlements, ProductInfo, Usage
from marketplace.client.errors import (
    AuthenticationFailed,
    InvalidQuery,
    NotEntitled,
    PolicyViolation,
    PrivacyBudgetExhausted,
    ProductUnavailable,
    QuotaExceeded,
    ResultUnreadable,
    ServiceUnavailable,
    ShuyunError,
    SubscriptionExpired,
    SubscriptionInactive,
    SubscriptionSuspended,
)
from marketplace.client.query import Agg, QueryBuilder
from marketplace.client.session import Client, QueryMeta, QueryResult, connect

__all__ = [
    "Agg",
    "AuthenticationFailed",
    "Client",
    "ConfigError",
    "Entitlement",
    "Entitlements",
    "InvalidQuery",
    "NotEntitled",
    "PolicyViolation",
    "PrivacyBudgetExhausted",
    "ProductInfo",
    "ProductUnavailable",
    "QueryBuilder",
    "QueryMeta",
    "QueryResult",
    "QuotaExceeded",
    "ResultUnreadable",
    "ServiceUnavailable",
    "ShuyunError",
    "SubscriptionExpired",
    "SubscriptionInactive",
    "SubscriptionSuspended",
    "Usage",
    "WorkspaceConfig",
    "connect",
    "load_config",
]
