"""Build and run the shim: one grpcio server with the three services, an outbox and a
flow submitter.

Example:
    ```python
    shim = start_shim(ShimConfig(provider_key=SecretStr(key), port=0, submit=False))
    ...  # kwild or a client talks to 127.0.0.1:shim.port
    shim.stop()
    ```
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc

from kwil_sync.arweave.ans104 import EthereumSigner
from kwil_sync.confirm import Confirmer
from kwil_sync.kwil.client import KwilClient
from kwil_sync.outbox import Outbox
from kwil_sync.proto import dbsync_pb2_grpc, extension_pb2_grpc, kwil_sync_pb2_grpc
from kwil_sync.shim.api import SyncShimServicer
from kwil_sync.shim.catalog import ActionCatalog
from kwil_sync.shim.config import ShimConfig
from kwil_sync.shim.dbsync import DbSyncServicer
from kwil_sync.shim.extension import DbSyncExtension
from kwil_sync.shim.prefect_runner import DeploymentRunner, PrefectRunner
from kwil_sync.shim.service import ShimService
from kwil_sync.shim.submit import FlowSubmitter

__all__ = ["RunningShim", "run_shim", "start_shim"]

log = logging.getLogger("kwil_sync.shim")


@dataclass
class RunningShim:
    """A started shim; `port` is the bound port (useful when configured with port 0)."""

    config: ShimConfig
    server: grpc.Server
    port: int
    service: ShimService
    outbox: Outbox
    client: KwilClient
    submitter: FlowSubmitter | None

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    def stop(self, grace: float = 5.0) -> None:
        """Finish in-flight calls (up to `grace` seconds), then close everything."""
        self.server.stop(grace).wait()
        if self.submitter is not None:
            self.submitter.stop()
        self.outbox.close()
        self.client.close()


def start_shim(config: ShimConfig, *, runner: DeploymentRunner | None = None) -> RunningShim:
    """Open the outbox, bind the port and start serving.

    Args:
        config: The shim's configuration.
        runner: Creates flow runs; defaults to Prefect when `config.submit` is set.

    Raises:
        RuntimeError: If the port cannot be bound.
    """
    signer = EthereumSigner(config.provider_key.get_secret_value())
    outbox = Outbox(config.outbox_path)
    client = KwilClient(config.kwil_url, version=config.kwil_version)
    submitter: FlowSubmitter | None = None
    if config.submit:
        address = config.advertise_address or f"{config.host}:{config.port}"
        submitter = FlowSubmitter(
            runner or PrefectRunner(),
            pending_count=lambda: outbox.pending_count() + outbox.waiting_count(),
            upload_deployment=config.upload_deployment,
            upload_parameters={"shim_address": address, "bundler_block": config.bundler_block},
            restore_deployment=config.restore_deployment,
            restore_parameters=dict(config.restore_parameters),
            batch_size=config.batch_size, interval_s=config.batch_interval_ms / 1000)
    version = config.kwil_version
    service = ShimService(
        signer=signer, outbox=outbox, catalog=ActionCatalog(client.actions),
        kwil_version=(lambda: client.version) if version == "auto" else version,
        on_saved=submitter.notify_saved if submitter else lambda: None,
        on_sync=submitter.request_sync if submitter else lambda original, local: None)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers,
                                                    thread_name_prefix="kwil-sync-grpc"))
    extension_pb2_grpc.add_ExtensionServiceServicer_to_server(
        DbSyncExtension(service, answer_with=config.answer_with), server)
    dbsync_pb2_grpc.add_DbSyncServiceServicer_to_server(DbSyncServicer(service), server)
    confirmer = Confirmer(outbox, client.tx_query, service.build_tied,
                          timeout_s=config.confirm_timeout_s)
    kwil_sync_pb2_grpc.add_SyncShimServicer_to_server(SyncShimServicer(service, confirmer),
                                                      server)
    try:
        port = server.add_insecure_port(f"{config.host}:{config.port}")
    except RuntimeError as exc:
        outbox.close()
        raise RuntimeError(f"cannot listen on {config.host}:{config.port} ({exc}): is another "
                           "shim running there? pick another --port") from exc
    if submitter is not None and config.port == 0 and not config.advertise_address:
        submitter.upload_parameters["shim_address"] = f"{config.host}:{port}"
    server.start()
    if submitter is not None:
        submitter.start()
    log.info("kwil-sync shim listening on %s:%d as provider %s; outbox %s (%d pending)",
             config.host, port, signer.address, config.outbox_path, outbox.pending_count())
    return RunningShim(config, server, port, service, outbox, client, submitter)


def run_shim(config: ShimConfig) -> None:
    """Serve until SIGINT or SIGTERM, then stop gracefully (what `kwil-sync shim` runs)."""
    shim = start_shim(config)
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the shim", signum)
        stopped.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        stopped.wait()
    finally:
        shim.stop()
