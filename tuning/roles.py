"""Who this process is in a distributed search, and the chief's oracle server.

keras_tuner's chief/worker mode is told by environment variables (``ENV_ID``, ``ENV_IP``,
``ENV_PORT``): the chief serves the oracle over gRPC and runs no trial, each worker asks it for
trials.  ``tuning.tuners`` asks which role it plays; ``tuning.distributed`` launches the
processes.
"""

from __future__ import annotations

import os
import time

CHIEF = "chief"
ENV_ID, ENV_IP, ENV_PORT = "KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"


def serve_oracle(oracle, poll_seconds: float = 1.0) -> None:
    """Serve `oracle` to the workers until the search is over; keras_tuner's chief loop.

    Same server as ``keras_tuner.src.distribute.oracle_chief.start_server`` (its servicer),
    but checks every `poll_seconds` (not 20 s) whether the last worker is done, and stops the
    server cleanly before returning, so the chief can go on to the summary and the retraining.
    """
    from concurrent import futures

    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer, exit_chief

    address = f"{os.environ[ENV_IP]}:{os.environ[ENV_PORT]}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise RuntimeError(f"the chief cannot listen on {address} (port in use?)")
    server.start()
    print(f"chief: oracle served on {address}; waiting for workers", flush=True)
    try:
        while not (servicer.stop_triggered and exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=2.0)


def is_worker() -> bool:
    """A distributed worker (keras_tuner: KERASTUNER_ORACLE_IP set, tuner id without "chief")."""
    from keras_tuner.src.distribute import utils  # keras_tuner loads Keras: not on import

    return utils.has_chief_oracle() and not utils.is_chief_oracle()


def is_chief() -> bool:
    from keras_tuner.src.distribute import utils  # keras_tuner loads Keras: not on import

    return utils.is_chief_oracle()
