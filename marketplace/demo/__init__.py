"""Demonstration material: deterministic synthetic public data of Baotou.

Nothing here is real data. The generators give the marketplace, the sandbox and the
benchmarks data of the kinds art. 3 names (water, power, gas, public transport, health,
market regulation ...) with plausible shapes, so rules about grades, openness and
personal information have something concrete to act on.
"""

from marketplace.demo.datasets import DATASETS, PROVIDERS, ColumnSpec, DatasetSpec, write_dataset

__all__ = ["DATASETS", "PROVIDERS", "ColumnSpec", "DatasetSpec", "write_dataset"]
