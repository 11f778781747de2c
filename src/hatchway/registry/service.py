"""The registry facade the HTTP layer talks to: one object per storage driver."""

from __future__ import annotations

from hatchway.metadata.repoindex import RepositoryIndex
from hatchway.registry.blobs import BlobStore
from hatchway.registry.browse import Browser
from hatchway.registry.catalog import Catalog
from hatchway.registry.index import Indexer
from hatchway.registry.manifests import Manifests
from hatchway.registry.referrers import Referrers
from hatchway.registry.tags import Tags
from hatchway.registry.uploads import Uploads
from hatchway.storage.driver import StorageDriver


class Registry:
    def __init__(self, driver: StorageDriver, *, delete_enabled: bool = True) -> None:
        self.driver = driver
        self.delete_enabled = delete_enabled
        self.blobs = BlobStore(driver)
        self.uploads = Uploads(driver, self.blobs)
        self.tags = Tags(driver)
        self.catalog = Catalog(driver)
        self.manifests = Manifests(driver, self.blobs, self.tags, self.catalog)
        self.referrers = Referrers(driver)
        self.index: Indexer | None = None
        self.browser: Browser | None = None

    def attach_index(self, store: RepositoryIndex) -> Indexer:
        """Keep ``store`` (the repository index) in step with this registry's pushes and
        deletes from now on."""
        self.index = Indexer(self.driver, self.blobs, store, self.catalog)
        self.manifests.index = self.index
        self.browser = Browser(store, self.manifests, self.index.summaries)
        return self.index
