"""Response bodies of ``/api/v1/repositories``: pydantic models, made from the browse
service's dataclasses (``registry/browse.py``), that also generate the OpenAPI schemas."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hatchway.metadata.repoindex import Pushed, RepositorySummary, TagRow
from hatchway.registry.browse import ManifestView, Referrer, ReferrerGroup
from hatchway.registry.summary import Layer, Platform


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PushedBy(_Response):
    at: datetime | None = Field(description="When it was last pushed (null: not known).")
    account: str | None = Field(description="Who pushed it (null: not known).")
    credential: str | None = Field(
        description="The access token's name when one was used; null: the password."
    )

    @classmethod
    def of(cls, pushed: Pushed) -> PushedBy:
        return cls(at=pushed.at, account=pushed.by, credential=pushed.credential)


class Repository(_Response):
    name: str
    tags: int
    manifests: int
    size: int = Field(description="Bytes of the distinct blobs its manifests reference.")
    last_push: datetime | None

    @classmethod
    def of(cls, found: RepositorySummary) -> Repository:
        return cls(
            name=found.name,
            tags=found.tags,
            manifests=found.manifests,
            size=found.size,
            last_push=found.last_push,
        )


class RepositoryList(_Response):
    repositories: list[Repository]
    next: str | None = Field(description="The next page's URL (as in the Link header), or null.")


class PlatformInfo(_Response):
    digest: str
    media_type: str
    platform: dict[str, str] | None = Field(
        description="os, architecture, variant, os.version (null: not a platform image)."
    )
    size: int | None = Field(description="That manifest's total size (null: not stored here).")
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None

    @classmethod
    def of(cls, found: Platform | dict[str, Any]) -> PlatformInfo:
        raw = found.as_dict() if isinstance(found, Platform) else found
        return cls.model_validate(raw)


class Tag(_Response):
    name: str
    digest: str
    media_type: str | None
    artifact_type: str | None
    size: int | None = Field(description="Config + layers; for an index, see platforms.")
    created: datetime | None = Field(description="From the image config (null: none there).")
    pushed: PushedBy
    platforms: list[PlatformInfo] | None = Field(description="An index's entries, with sizes.")

    @classmethod
    def of(cls, row: TagRow) -> Tag:
        return cls(
            name=row.tag,
            digest=row.digest,
            media_type=row.media_type,
            artifact_type=row.artifact_type,
            size=row.size,
            created=row.created,
            pushed=PushedBy.of(row.pushed),
            platforms=[PlatformInfo.of(p) for p in row.platforms]
            if row.platforms is not None
            else None,
        )


class TagList(_Response):
    repository: Repository
    tags: list[Tag]
    next: str | None = Field(description="The next page's URL (as in the Link header), or null.")


class LayerInfo(_Response):
    digest: str
    media_type: str
    size: int
    annotations: dict[str, str] | None = None

    @classmethod
    def of(cls, layer: Layer) -> LayerInfo:
        return cls(
            digest=layer.digest,
            media_type=layer.media_type,
            size=layer.size,
            annotations=layer.annotations,
        )


class ReferrerInfo(_Response):
    digest: str
    media_type: str
    artifact_type: str | None = Field(description="What it is: a signature, an SBOM, ...")
    size: int
    annotations: dict[str, str] | None
    pushed: PushedBy

    @classmethod
    def of(cls, found: Referrer) -> ReferrerInfo:
        return cls(
            digest=found.digest,
            media_type=found.media_type,
            artifact_type=found.artifact_type,
            size=found.size,
            annotations=found.annotations,
            pushed=PushedBy.of(found.pushed),
        )


class ReferrerGroupInfo(_Response):
    subject: str = Field(description="The image they refer to: the manifest, or a platform's.")
    platform: dict[str, str] | None
    referrers: list[ReferrerInfo]

    @classmethod
    def of(cls, group: ReferrerGroup) -> ReferrerGroupInfo:
        return cls(
            subject=group.subject,
            platform=group.platform,
            referrers=[ReferrerInfo.of(r) for r in group.referrers],
        )


class ManifestInfo(_Response):
    name: str
    reference: str
    digest: str
    media_type: str
    artifact_type: str | None
    size: int = Field(description="Config + layers; for an index, its platforms' sum.")
    manifest_size: int
    created: datetime | None
    annotations: dict[str, str] | None
    config: LayerInfo | None
    layers: list[LayerInfo]
    platforms: list[PlatformInfo] | None
    subject: str | None = Field(description="Set when this manifest itself refers to another.")
    tags: list[str]
    pushed: PushedBy
    referrers: list[ReferrerGroupInfo]

    @classmethod
    def of(cls, view: ManifestView) -> ManifestInfo:
        return cls(
            name=view.name,
            reference=view.reference,
            digest=view.digest,
            media_type=view.media_type,
            artifact_type=view.artifact_type,
            size=view.size,
            manifest_size=view.manifest_size,
            created=view.created,
            annotations=view.annotations,
            config=LayerInfo.of(view.config) if view.config is not None else None,
            layers=[LayerInfo.of(layer) for layer in view.layers],
            platforms=[PlatformInfo.of(p) for p in view.platforms]
            if view.platforms is not None
            else None,
            subject=view.subject,
            tags=view.tags,
            pushed=PushedBy.of(view.pushed),
            referrers=[ReferrerGroupInfo.of(g) for g in view.referrers],
        )


REPOSITORY_MODELS: tuple[type[BaseModel], ...] = (RepositoryList, TagList, ManifestInfo)
