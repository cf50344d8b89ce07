"""The composition root: config -> store -> services. One place wires everything."""

from __future__ import annotations

from dataclasses import dataclass

from marketplace.config import Config
from marketplace.services.base import Clock, utc_now
from marketplace.services.catalog import CatalogService
from marketplace.services.credentials import CredentialsService
from marketplace.services.demand import DemandService
from marketplace.services.feedback import FeedbackService
from marketplace.services.incentives import IncentivesService
from marketplace.services.licensing import LicensingService
from marketplace.services.parties import PartiesService
from marketplace.services.products import ProductsService
from marketplace.services.quality import QualityService
from marketplace.services.usage import UsageService
from marketplace.store import MarketplaceApplication, open_store


@dataclass
class Marketplace:
    """Every use-case service, sharing one store and one clock."""

    config: Config
    app: MarketplaceApplication
    parties: PartiesService
    catalog: CatalogService
    products: ProductsService
    demand: DemandService
    licensing: LicensingService
    usage: UsageService
    credentials: CredentialsService
    feedback: FeedbackService
    quality: QualityService
    incentives: IncentivesService

    def close(self) -> None:
        self.app.close()


def build(config: Config | None = None, *, clock: Clock = utc_now) -> Marketplace:
    config = config or Config.from_env()
    app = open_store(config)
    return Marketplace(
        config=config,
        app=app,
        parties=PartiesService(app, clock),
        catalog=CatalogService(app, clock),
        products=ProductsService(app, clock),
        demand=DemandService(app, clock),
        licensing=LicensingService(app, clock),
        usage=UsageService(app, clock),
        credentials=CredentialsService(app, clock),
        feedback=FeedbackService(app, clock),
        quality=QualityService(app, clock),
        incentives=IncentivesService(app, clock),
    )
