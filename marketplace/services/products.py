"""Use cases of data products and their prices (art. 6, 7, 14, 22, 24, 27).

Flow chosen for supply consent (art. 14): ``build_product`` drafts the product and, in
the same save, asks the provider of each source to supply it to that product. Consent
is per product, so the product must exist (with its name, purpose and output schema)
before a provider can judge the request; the draft checks only the hard rules (sources
approved, operable, delivery policy). Consent is enforced at ``submit_for_review``:
the service re-reads every source and the product refuses review with
``SupplyNotConsented`` until every provider has granted it. ``request_supply`` asks
again after a refusal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from domain.catalog import CatalogResource, FieldSpec, SupplyStatus
from domain.errors import AlreadyExists, InvalidInput, NotFound
from domain.identity import Actor
from domain.pricing import PricePlan, PurposeClass
from domain.products import DataProduct, DeliveryMode, ExpertRecommendation, SourceFacts
from marketplace import access
from marketplace.services.base import Service, ensure_uuid


class ProductsService(Service):
    # -- building -------------------------------------------------------------------------------
    def build_product(
        self,
        actor: Actor,
        *,
        name: str,
        description: str,
        category: str,
        source_ids: Sequence[UUID | str],
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        delivery_modes: Sequence[DeliveryMode | str],
    ) -> UUID:
        """Draft a product from catalog resources and request supply from their providers (art. 14, 22)."""
        access.require(actor, "product.build")
        if isinstance(source_ids, (str, bytes)) or not isinstance(source_ids, Sequence):
            raise InvalidInput("source_ids", "must be a list of catalog resource ids")
        ids = [ensure_uuid(f"source_ids[{i}]", s) for i, s in enumerate(source_ids)]
        created: list[UUID] = []

        def command() -> list[Aggregate]:
            resources = [self._source(i, rid) for i, rid in enumerate(ids)]
            product_id = DataProduct.create_id(name.strip() if isinstance(name, str) else name)
            product = DataProduct.create(
                name=name, description=description, category=category,
                sources=[SourceFacts.of(r, product_id) for r in resources], fields=fields,
                delivery_modes=delivery_modes, by=actor,
            )
            if self.exists(product.id):
                raise AlreadyExists(f"a product named {product.name!r} already exists", product=product.id)
            for resource in resources:
                if resource.supply_status(product.id) not in (SupplyStatus.PENDING, SupplyStatus.GRANTED):
                    resource.request_supply(product_id=product.id, by=actor)
            created[:] = [product.id]
            return [product, *resources]

        self.run(command)
        return created[0]

    def request_supply(self, actor: Actor, product_id: UUID | str, resource_id: UUID | str) -> int:
        """Ask a source's provider again, after a refusal, to supply it to the product (art. 14)."""
        access.require(actor, "product.build")

        def command() -> list[CatalogResource]:
            product = self.get(DataProduct, product_id)
            rid = ensure_uuid("resource_id", resource_id)
            if rid not in product.source_ids:
                raise InvalidInput("resource_id", f"{rid} is not a source of product {product.name!r}")
            resource = self.get(CatalogResource, rid)
            resource.request_supply(product_id=product.id, by=actor)
            return [resource]

        return self.run(command)

    def register_product_version(
        self, actor: Actor, product_id: UUID | str, *, content_hash: str, row_count: int
    ) -> int:
        """Record a build of the product's data; an approved product returns to review (art. 22)."""
        access.require(actor, "product.build")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.register_version(content_hash=content_hash, row_count=row_count, at=self.clock(), by=actor)
            return [product]

        return self.run(command)

    # -- compliance review (art. 14, 16, 22, 28-32) ------------------------------------------------
    def submit_for_review(self, actor: Actor, product_id: UUID | str) -> int:
        """Send a product to compliance review once every provider has consented (art. 14)."""
        access.require(actor, "product.build")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            facts = [SourceFacts.of(self.get(CatalogResource, rid), product.id) for rid in product.source_ids]
            product.submit_for_review(sources=facts, by=actor)
            return [product]

        return self.run(command)

    def review_compliance(
        self, actor: Actor, product_id: UUID | str, *, approved: bool, reason: str = ""
    ) -> int:
        """A compliance reviewer who did not build the product approves or rejects it."""
        access.require(actor, "product.review")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.review(approved=approved, reason=reason, by=actor)
            return [product]

        return self.run(command)

    # -- storefront (art. 7, 27) -----------------------------------------------------------------
    def list_product(self, actor: Actor, product_id: UUID | str) -> int:
        access.require(actor, "product.list")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.list_on_storefront(by=actor)
            return [product]

        return self.run(command)

    def unlist_product(self, actor: Actor, product_id: UUID | str, *, reason: str) -> int:
        access.require(actor, "product.list")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.unlist(reason=reason, by=actor)
            return [product]

        return self.run(command)

    def add_showcase(self, actor: Actor, product_id: UUID | str, *, title: str, unit_name: str, summary: str) -> int:
        """Promote a case of successful use on the storefront (art. 27)."""
        access.require(actor, "product.showcase")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.add_showcase(title=title, unit_name=unit_name, summary=summary, by=actor)
            return [product]

        return self.run(command)

    def add_expert_opinion(
        self,
        actor: Actor,
        product_id: UUID | str,
        *,
        expert: str,
        opinion: str,
        recommendation: ExpertRecommendation | str,
    ) -> int:
        """Record the expert committee's opinion on a product (art. 6)."""
        access.require(actor, "expert.opine")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.add_expert_opinion(expert=expert, opinion=opinion, recommendation=recommendation, by=actor)
            return [product]

        return self.run(command)

    # -- prices (art. 24) ----------------------------------------------------------------------------
    def set_price_cap(self, actor: Actor, product_id: UUID | str, *, cap: Decimal | str | int, reason: str) -> int:
        access.require(actor, "product.set_cap")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.set_price_cap(cap=cap, reason=reason, by=actor)
            return [product]

        return self.run(command)

    def set_price_plan(
        self, actor: Actor, product_id: UUID | str, *, plan: PricePlan | Mapping[str, Any], reason: str
    ) -> int:
        access.require(actor, "product.price")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.set_plan(plan=plan, reason=reason, by=actor)
            return [product]

        return self.run(command)

    def retire_price_plan(self, actor: Actor, product_id: UUID | str, *, plan_id: str, reason: str) -> int:
        access.require(actor, "product.price")

        def command() -> list[DataProduct]:
            product = self.get(DataProduct, product_id)
            product.retire_plan(plan_id=plan_id, reason=reason, by=actor)
            return [product]

        return self.run(command)

    def quote(
        self, actor: Actor, product_id: UUID | str, *, plan_id: str, purpose: PurposeClass | str, quantity: int
    ) -> Decimal:
        """What a use would cost. Prices and caps are public (national rules): any role may ask."""
        return self.get(DataProduct, product_id).quote(plan_id, purpose, quantity)

    # -- helpers -------------------------------------------------------------------------------------
    def _source(self, index: int, resource_id: UUID) -> CatalogResource:
        try:
            return self.get(CatalogResource, resource_id)
        except NotFound as e:
            raise NotFound(f"source_ids[{index}]: {e.message}", id=resource_id) from None
