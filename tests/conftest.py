import os
from pathlib import Path

import pytest

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sella500"


def sella500_dir():
    """The 500-reaction set: $GPRDIMER_SELLA500, else ../shared/data/sella500 beside the checkout."""
    env = os.environ.get("GPRDIMER_SELLA500")
    path = Path(env) if env else _SHARED
    return path if (path / "sella_si_data.zip").exists() else None


@pytest.fixture(scope="session")
def sella500():
    path = sella500_dir()
    if path is None:
        pytest.skip("500-reaction set not found: set GPRDIMER_SELLA500 or place it at ../shared/data/sella500")
    return path
