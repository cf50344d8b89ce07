"""Use cases of data quality issues and objections (art. 11, 17)."""

from __future__ import annotations

from uuid import UUID

from domain.catalog import CatalogResource, Provider
from domain.errors import InvalidInput
from domain.identity import Actor
from domain.products import DataProduct
from domain.quality import IssueStatus, QualityDimension, QualityIssue
from marketplace import access
from marketplace.services.base import Service, ensure_uuid


class QualityService(Service):
    def report_issue(
        self, actor: Actor, *, resource_id: UUID | str, product_id: UUID | str | None = None,
        dimension: QualityDimension | str, description: str, evidence: str,
    ) -> UUID:
        """Report a quality problem with a catalog resource; its provider is read from the catalog."""
        access.require(actor, "quality.report")
        resource = self.get(CatalogResource, ensure_uuid("resource_id", resource_id))
        product_key: UUID | None = None
        if product_id is not None:
            product = self.get(DataProduct, ensure_uuid("product_id", product_id))
            if resource.id not in product.source_ids:
                raise InvalidInput(
                    "product_id", f"product {product.name!r} does not draw on resource {resource.name!r}",
                    product=product.id, resource=resource.id,
                )
            product_key = product.id
        issue = QualityIssue.report(
            resource_id=resource.id, product_id=product_key, provider_id=resource.provider_id, dimension=dimension,
            description=description, evidence=evidence, by=actor, at=self.clock(),
        )
        self.run(lambda: [issue])
        return issue.id

    def verify_issue(self, actor: Actor, issue_id: UUID | str, *, deadline_days: int) -> int:
        """Uphold a report and set the provider's deadline for rectification."""
        access.require(actor, "quality.verify")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            issue.verify(deadline_days=deadline_days, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def reject_issue(self, actor: Actor, issue_id: UUID | str, *, reason: str) -> int:
        """Do not uphold an objection; the reason is recorded for the reporter."""
        access.require(actor, "quality.verify")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            issue.reject(reason=reason, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def rectify_issue(self, actor: Actor, issue_id: UUID | str, *, note: str, version: int | None = None) -> int:
        """Staff on the provider's roster record the correction, optionally naming the corrected version."""
        access.require(actor, "quality.rectify")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            self.check_provider_staff(actor, issue)
            issue.check_status("rectify", IssueStatus.VERIFIED)
            if version is not None and not isinstance(version, bool) and isinstance(version, int):
                resource = self.get(CatalogResource, issue.resource_id)
                if version not in {v.number for v in resource.versions}:
                    raise InvalidInput(
                        "version", f"resource {resource.name!r} has no version {version}",
                        resource=resource.id, issue=issue.id,
                    )
            issue.rectify(note=note, version=version, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def refuse_rectification(self, actor: Actor, issue_id: UUID | str, *, reason: str) -> int:
        """The provider declines to rectify; the issue stays open and is overdue from now on."""
        access.require(actor, "quality.rectify")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            self.check_provider_staff(actor, issue)
            issue.refuse(reason=reason, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def extend_deadline(self, actor: Actor, issue_id: UUID | str, *, days: int, reason: str) -> int:
        """Extend the rectification deadline, once, with a reason."""
        access.require(actor, "quality.extend")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            issue.extend_deadline(days=days, reason=reason, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def close_issue(self, actor: Actor, issue_id: UUID | str, *, note: str) -> int:
        """Confirm the rectification and close the issue."""
        access.require(actor, "quality.verify")

        def command() -> list[QualityIssue]:
            issue = self.get(QualityIssue, issue_id)
            issue.close(note=note, by=actor, at=self.clock())
            return [issue]

        return self.run(command)

    def overdue(self, issue_id: UUID | str) -> bool:
        """Whether the issue is overdue now (refused, or not rectified by its deadline)."""
        return self.get(QualityIssue, issue_id).is_overdue(self.clock())

    def check_provider_staff(self, actor: Actor, issue: QualityIssue) -> None:
        """The actor speaks for the issue's provider and is on its roster (art. 15 named contacts)."""
        access.require_provider(actor, issue.provider_id)
        self.get(Provider, issue.provider_id).check_staff(actor)
