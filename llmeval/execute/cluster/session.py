"""A run's connection to Ray: join a cluster, or start a local instance; what run.json records of it."""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import ray

from llmeval.errors import UsageError

FORWARDED_ENV = ("LITELLM_LOCAL_MODEL_COST_MAP", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                 "LLMEVAL_LOCAL_DEVICE", "LLMEVAL_LOCAL_MAX_BATCH", "LLMEVAL_LOCAL_BATCH_WAIT_MS")
"""Switches the workers need as the driver has them (offline mode, local model settings); never secrets."""


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on a `HOST:PORT` (or `ray://HOST:PORT`) nobody listens on: Ray itself would retry
    for minutes. `auto` is left to Ray, which answers at once when it finds no cluster."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise UsageError(f"cannot join the Ray cluster at {address}: {e.strerror or e}",
                         hint="check the address (`ray status` on the head node prints it), "
                              "or leave --ray-address out to start a local Ray instance") from None


class RaySession:
    """Ray for one run: joined at `address`, or a local instance of `workers` CPUs; a process that
    already uses Ray (a notebook, a test) keeps its instance, and llmeval leaves it running."""

    def __init__(self, address: str | None, workers: int | None, runtime_env: dict[str, Any]) -> None:
        self.owned = not ray.is_initialized()
        if self.owned:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report sent from an eval run
            env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
            runtime_env = {**runtime_env, "env_vars": {**env, **runtime_env.get("env_vars", {})}}
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                                      "runtime_env": runtime_env}
            if address:
                check_reachable(address)
            try:
                if address:
                    ray.init(address=address, **kwargs)
                else:
                    ray.init(num_cpus=workers or os.cpu_count() or 1, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
                raise UsageError(f"cannot {where}: {str(e).splitlines()[0]}",
                                 hint="check the address (ray status on the head node prints it), "
                                      "or leave --ray-address out to start a local instance") from None
        self.address = address or ("local" if self.owned else ray.get_runtime_context().gcs_address)
        resources = ray.cluster_resources()
        self.cpus = float(resources.get("CPU", 0))
        self.gpus = float(resources.get("GPU", 0))
        self.nodes = sum(1 for n in ray.nodes() if n.get("Alive"))

    def check_models(self, num_cpus: float, num_gpus: float) -> None:
        """A model actor that asks for more than the whole cluster has would wait forever: say so now."""
        if num_gpus > self.gpus:
            raise UsageError(f"model actors ask for {num_gpus:g} GPU(s) but the Ray cluster has {self.gpus:g}",
                             hint="set --ray-num-gpus 0 (or executor.models.num_gpus: 0) to run them on CPU")
        if num_cpus > self.cpus:
            raise UsageError(f"model actors ask for {num_cpus:g} CPUs but the Ray cluster has {self.cpus:g}",
                             hint="lower --ray-num-cpus (or executor.models.num_cpus)")

    def describe(self) -> dict[str, Any]:
        """The cluster, for run.json."""
        return {"kind": "ray", "address": self.address, "nodes": self.nodes, "cpus": self.cpus, "gpus": self.gpus}

    def close(self) -> None:
        """Stop the local instance, or leave the cluster, when this run started the connection."""
        if self.owned:
            ray.shutdown()
