"""The pull-through mirror (``proxy:``): repositories under a configured prefix are
copies of an upstream registry's, fetched on first pull and kept in the local store."""

from hatchway.registry.mirror.service import Mirror, MirrorRoute
from hatchway.registry.mirror.upstream import UpstreamDown, UpstreamMissing

__all__ = ["Mirror", "MirrorRoute", "UpstreamDown", "UpstreamMissing"]
