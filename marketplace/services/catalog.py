"""Use cases of providers and their catalogues (art. 3, 5, 10-14)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from domain.catalog import (
    CatalogResource,
    FieldSpec,
    FieldType,
    Grade,
    Openness,
    Provider,
    ProviderKind,
    UpdateFrequency,
)
from domain.errors import require_text
from domain.identity import Actor
from marketplace import access
from marketplace.services.base import Service, ensure_uuid


class CatalogService(Service):
    # -- providers -------------------------------------------------------------------------
    def register_provider(
        self, actor: Actor, *, name: str, kind: ProviderKind | str, contact_email: str
    ) -> UUID:
        """The operator or the bureau enrols a public management or service organisation (art. 3)."""
        access.require(actor, "provider.register")
        provider = Provider.register(name=name, kind=kind, contact_email=contact_email, by=actor)
        return self.create(provider, f"a provider named {provider.name!r} is already registered").id

    def add_provider_staff(self, actor: Actor, provider_id: UUID | str, *, user_id: str) -> int:
        """Name a person who acts for the provider (art. 15 named contacts)."""
        access.require(actor, "provider.manage_staff")

        def command() -> list[Provider]:
            provider = self.get(Provider, provider_id)
            provider.add_staff(user_id=user_id, by=actor)
            return [provider]

        return self.run(command)

    def remove_provider_staff(self, actor: Actor, provider_id: UUID | str, *, user_id: str) -> int:
        """Take a person off the roster: their provider-staff login no longer acts for it."""
        access.require(actor, "provider.manage_staff")

        def command() -> list[Provider]:
            provider = self.get(Provider, provider_id)
            provider.remove_staff(user_id=user_id, by=actor)
            return [provider]

        return self.run(command)

    # -- catalogue entries ----------------------------------------------------------------------
    def compile_resource(
        self,
        actor: Actor,
        *,
        provider_id: UUID | str,
        name: str,
        description: str,
        category: str,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        grade: Grade | str,
        openness: Openness | str,
        update_frequency: UpdateFrequency | str,
    ) -> UUID:
        """Provider staff compile an entry of their catalogue; it awaits the bureau's review (art. 10)."""
        access.require(actor, "catalog.compile")
        pid = ensure_uuid("provider_id", provider_id)
        access.require_provider(actor, pid)
        provider = self.get(Provider, pid)
        resource = CatalogResource.compile(
            provider=provider, name=name, description=description, category=category, fields=fields,
            grade=grade, openness=openness, update_frequency=update_frequency, by=actor,
        )
        return self.create(
            resource, f"provider {provider.name!r} already has a catalog entry named {resource.name!r}"
        ).id

    def revise_resource(
        self,
        actor: Actor,
        resource_id: UUID | str,
        *,
        description: str,
        category: str,
        fields: Sequence[FieldSpec | Mapping[str, Any]],
        grade: Grade | str,
        openness: Openness | str,
        update_frequency: UpdateFrequency | str,
    ) -> int:
        """Correct a rejected entry and resubmit it to the bureau (art. 10)."""
        access.require(actor, "catalog.compile")

        def command() -> list[CatalogResource]:
            resource = self.get(CatalogResource, resource_id)
            access.require_provider(actor, resource.provider_id)
            resource.revise(
                provider=self.get(Provider, resource.provider_id), description=description,
                category=category, fields=fields, grade=grade, openness=openness,
                update_frequency=update_frequency, by=actor,
            )
            return [resource]

        return self.run(command)

    def review_resource(self, actor: Actor, resource_id: UUID | str, *, approved: bool, reason: str = "") -> int:
        """The bureau admits an entry to the master catalogue, or sends it back with a reason (art. 5, 10)."""
        access.require(actor, "catalog.review")

        def command() -> list[CatalogResource]:
            resource = self.get(CatalogResource, resource_id)
            resource.review(approved=approved, reason=reason, by=actor)
            return [resource]

        return self.run(command)

    def register_resource_version(
        self,
        actor: Actor,
        resource_id: UUID | str,
        *,
        content_hash: str,
        row_count: int,
        schema: Mapping[str, FieldType | str] | Sequence[str] | None = None,
    ) -> int:
        """Record a delivery of an approved entry's data (art. 10-11).

        ``schema`` is the delivered columns (names, or name -> type) and must match the
        catalogued fields; when the caller has no file to inspect (a declaration by the
        provider) it is taken to be the catalogued schema.
        """
        access.require(actor, "catalog.compile")

        def command() -> list[CatalogResource]:
            resource = self.get(CatalogResource, resource_id)
            access.require_provider(actor, resource.provider_id)
            declared = schema if schema is not None else {f.name: f.dtype for f in resource.fields}
            resource.register_version(
                provider=self.get(Provider, resource.provider_id), content_hash=content_hash,
                row_count=row_count, schema=declared, at=self.clock(), by=actor,
            )
            return [resource]

        return self.run(command)

    def decide_supply(
        self, actor: Actor, resource_id: UUID | str, *, product_id: UUID | str, granted: bool, reason: str = ""
    ) -> int:
        """The provider consents to, or refuses, supplying an entry to one product (art. 14)."""
        access.require(actor, "catalog.consent")
        pid = ensure_uuid("product_id", product_id)

        def command() -> list[CatalogResource]:
            resource = self.get(CatalogResource, resource_id)
            access.require_provider(actor, resource.provider_id)
            resource.decide_supply(
                provider=self.get(Provider, resource.provider_id), product_id=pid, granted=granted,
                reason=reason, by=actor,
            )
            return [resource]

        return self.run(command)

    # -- reads -------------------------------------------------------------------------------------
    def provider_id(self, name: str) -> UUID:
        """The id a provider of this name has (or would have): names are the natural key."""
        return Provider.create_id(require_text("name", name, min_length=2, max_length=200))
