"""Shared fixtures: where the real datasets are, and how to react when they are not."""
import os
from pathlib import Path

import pytest

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def require_shared_datasets() -> Path:
    """The real-data folder; in CI its absence is a failure, elsewhere a printed skip."""
    if SHARED_DATASETS.is_dir():
        return SHARED_DATASETS
    reason = f"real datasets not found at {SHARED_DATASETS}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (required in CI)")
    print(f"SKIP: {reason}")
    pytest.skip(reason)


@pytest.fixture
def shared_datasets() -> Path:
    return require_shared_datasets()


# A test that reaches the database, whether by @pytest.mark.django_db or through a fixture
# (db, transactional_db, live_server, admin_client, ...: all of them need django_db_setup),
# is marked `database`; test.sh runs those again on PostgreSQL.
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_setup"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("django_db") or DATABASE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.database)
