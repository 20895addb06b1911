"""Who this process is in a distributed search.

Keras Tuner's chief/worker mode is told by environment variables (``ENV_ID``, ``ENV_IP``,
``ENV_PORT``, its documented interface): the chief serves the oracle over gRPC and runs no
trial, each worker asks it for trials.  ``tuning.tuners`` asks which role it plays;
``tuning.distributed`` launches the processes.  Read from the environment as Keras Tuner does:
distributed when ENV_IP is set, the chief when its tuner id contains "chief".
"""

from __future__ import annotations

import os

from core.errors import ConfigError

CHIEF = "chief"
ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"


def is_distributed() -> bool:
    if ENV_IP not in os.environ:
        return False
    missing = [name for name in (ENV_PORT, ENV_ID) if name not in os.environ]
    if missing:
        raise ConfigError(f"{ENV_IP} is set but {' and '.join(missing)} not: a distributed "
                          "search needs all three (see python -m tuning.distributed --help)")
    return True


def is_chief() -> bool:
    return is_distributed() and CHIEF in os.environ[ENV_ID]


def is_worker() -> bool:
    return is_distributed() and CHIEF not in os.environ[ENV_ID]


def oracle_address() -> str:
    """Where the chief listens (and the workers connect)."""
    return f"{os.environ[ENV_IP]}:{os.environ[ENV_PORT]}"
