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
