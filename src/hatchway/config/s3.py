"""``storage.s3`` and ``storage.redirect``: distribution's s3-aws keys, where they mean
the same, plus ``publicendpoint`` (the S3 endpoint clients reach for redirects)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MiB = 1024 * 1024
GiB = 1024 * MiB


class S3(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    region: str | None = None  # else AWS_REGION / the AWS config; us-east-1 with an endpoint
    regionendpoint: str | None = None  # an S3-compatible service: http(s)://host:port
    # Both or neither: without them, the standard AWS chain (environment, shared
    # credentials file, instance or container role).
    accesskey: str | None = None
    secretkey: str | None = Field(default=None, repr=False)
    sessiontoken: str | None = Field(default=None, repr=False)
    rootdirectory: str = ""
    chunksize: int = Field(default=10 * MiB, ge=5 * MiB, le=5 * GiB)
    forcepathstyle: bool = False
    secure: bool = True
    skipverify: bool = False
    v4auth: bool = True
    encrypt: bool = False
    keyid: str | None = None
    storageclass: str = "STANDARD"
    objectacl: str | None = None
    useragent: str | None = None
    multipartcopychunksize: int = Field(default=32 * MiB, ge=5 * MiB, le=5 * GiB)
    multipartcopymaxconcurrency: int = Field(default=100, ge=1, le=1000)
    multipartcopythresholdsize: int = Field(default=32 * MiB, ge=0, le=5 * GiB)
    # hatchway: the endpoint presigned redirect URLs name, when clients reach the
    # store by another address than this server does (default: regionendpoint).
    publicendpoint: str | None = None

    @model_validator(mode="after")
    def _check(self) -> S3:
        if (self.accesskey is None) != (self.secretkey is None):
            raise ValueError("accesskey and secretkey go together (or neither: the AWS chain)")
        if not self.v4auth:
            raise ValueError("v4auth: false is not supported (hatchway signs with SigV4)")
        for name in ("regionendpoint", "publicendpoint"):
            value = getattr(self, name)
            if value is not None and not value.split("://", 1)[-1].strip("/"):
                raise ValueError(f"{name}: expected a host or URL")
        return self

    def driver_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if k != "v4auth"}


class Redirect(BaseModel):
    """distribution's ``storage.redirect``: ``disable: false`` sends blob GETs to a
    presigned URL of the object store (hatchway: only when the section is present)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    disable: bool = False
    expiry: int = Field(default=1200, ge=60, le=7 * 24 * 3600)  # hatchway; seconds
