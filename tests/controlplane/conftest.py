"""The store on both backends: ``backend`` is SQLite or PostgreSQL, ``store`` its
store, opened on a fresh database (PostgreSQL: a throwaway one, dropped after)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.postgres import throwaway_database
from tests.helpers.stores import BACKENDS, StoreBackend


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreBackend]:
    if request.param == "sqlite":
        yield StoreBackend("sqlite", str(tmp_path / "fleet.db"))
    else:
        with throwaway_database() as url:
            yield StoreBackend("postgresql", url)


@pytest.fixture
async def store(backend: StoreBackend) -> AsyncIterator[Any]:
    opened = backend.make()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
