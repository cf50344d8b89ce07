"""The composition root: config -> store -> services. One place wires everything."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.config import Config
from marketplace.services.base import Clock, utc_now
from marketplace.services.parties import PartiesService
from marketplace.store import MarketplaceApplication, open_store


@dataclass
class Marketplace:
    """Every use-case service, sharing one store and one clock."""

    config: Config
    app: MarketplaceApplication
    parties: PartiesService

    def close(self) -> None:
        self.app.close()


def build(config: Config | None = None, *, clock: Clock = utc_now) -> Marketplace:
    config = config or Config.from_env()
    app = open_store(config)
    return Marketplace(
        config=config,
        app=app,
        parties=PartiesService(app, clock),
    )
