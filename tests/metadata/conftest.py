from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hatchway.metadata import MetadataStore
from tests.metadata.postgres import fresh_schema


@pytest.fixture(params=["sqlite", "postgresql"])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'hatchway.db'}"
    else:
        with fresh_schema() as found:
            yield found


@pytest.fixture
def store(dsn: str) -> Iterator[MetadataStore]:
    opened = MetadataStore(dsn)
    yield opened
    opened.dispose()
