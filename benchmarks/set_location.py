"""Where the benchmark scripts find the 500-reaction set: $GPRDIMER_SELLA500, else
../shared/data/sella500 beside the checkout (the rule tests/conftest.py follows as well)."""

import os
from pathlib import Path


def default_set() -> Path:
    env = os.environ.get("GPRDIMER_SELLA500")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data" / "sella500"
