"""PLACEHOLDER until the licensing context lands."""
from eventsourcing.domain import Aggregate


class Subscription(Aggregate):
    pass
