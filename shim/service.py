"""What the shim does, independent of gRPC: validate, build the record, persist, notify.

The gRPC servicers (`shim.extension`, `shim.dbsync`, `shim.server`) translate requests
into these calls and these errors into status codes:

- `InvalidRequest` -> INVALID_ARGUMENT (bad metadata, unknown action, wrong argument
  count, oversize or unencodable values): kwild fails the deploy or the transaction.
- `WrongProvider` -> FAILED_PRECONDITION (the database was initialized under another key).
- `CatalogUnavailable` -> UNAVAILABLE (the local provider did not answer).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from kwil_sync.arweave.ans104 import DataItem, EthereumSigner
from kwil_sync.arweave.tags import TagError
from kwil_sync.kwil import dbid
from kwil_sync.outbox import Outbox, StoredItem
from kwil_sync.records import (
    MAX_DOCUMENT_BYTES,
    RecordError,
    action_id,
    build_record,
)
from kwil_sync.records import encode_document as _encode_document
from kwil_sync.shim.catalog import ActionCatalog, CatalogUnavailable, UnknownActionError
from kwil_sync.shim.errors import InvalidRequest, WrongProvider
from kwil_sync.shim.tied import SavedCall, TiedSaves

__all__ = ["GATEWAY_URL", "InvalidRequest", "SavedAction", "SavedCall", "ShimService",
           "WrongProvider"]

GATEWAY_URL = "https://arweave.net"
_DBID = re.compile(r"^x[0-9a-f]{56}$")
_MAX_NAME = 1024  # Local-DB-Name is a tag value; keep it well inside ANS-104's limits


@dataclass(frozen=True)
class SavedAction:
    stored: StoredItem

    @property
    def url(self) -> str:
        return f"{GATEWAY_URL}/{self.stored.item_id}"


class ShimService(TiedSaves):
    """Turns save_action calls into durable, signed records.

    Args:
        signer: The provider key that signs records.
        outbox: Where records wait for upload.
        catalog: Parameter names of each database's actions.
        kwil_version: "v0.9" (dbids) or "v0.10" (namespaces), or a callable that
            detects it when first needed (kwild starts after the shim); decides local ids.
        on_saved: Called after each newly stored record (submits upload runs).
        on_sync: Called with (original_dbid, local_dbid) to start restore-then-follow.
    """

    def __init__(self, *, signer: EthereumSigner, outbox: Outbox, catalog: ActionCatalog,
                 kwil_version: str | Callable[[], str] = "v0.9",
                 on_saved: Callable[[], None] = lambda: None,
                 on_sync: Callable[[str, str], None] = lambda original, local: None) -> None:
        self.signer = signer
        self.outbox = outbox
        self.catalog = catalog
        self._version = kwil_version
        self._on_saved = on_saved
        self._on_sync = on_sync

    @property
    def provider_address(self) -> str:
        return self.signer.address

    @property
    def kwil_version(self) -> str:
        if callable(self._version):
            try:
                self._version = self._version()
            except Exception as exc:
                raise CatalogUnavailable(f"could not detect the kwild version: {exc}") from exc
        return self._version

    def local_dbid(self, local_db_name: str, version: str | None = None) -> str:
        """This provider's id for a database name (a namespace is its own id in v0.10)."""
        if (version or self.kwil_version) == "v0.10":
            return local_db_name
        return dbid(self.signer.address, local_db_name)

    def initialize(self, metadata: Mapping[str, str]) -> dict[str, str]:
        """Check a schema's `use db_sync {...}` metadata and complete it (2023 contract).

        Only kwild v0.5 to v0.9 call Initialize, so ids are v0.9 dbids.

        Returns the metadata with `provider_address`, `local_dbid` (as given, for a
        validator that did not deploy the database, else computed from this shim's key)
        and `original_dbid` (defaulting to `local_dbid`), and starts restore-then-follow
        for the database.

        Raises:
            InvalidRequest: If `local_db_name` is missing or a value is malformed.
            WrongProvider: If the metadata was completed for another provider key.
        """
        name = (metadata.get("local_db_name") or "").strip()
        if not name:
            raise InvalidRequest("db_sync metadata needs local_db_name: write "
                                 "`use db_sync {local_db_name: '<database name>'} as db_sync;`")
        if len(name) > _MAX_NAME:
            raise InvalidRequest(f"local_db_name is {len(name)} characters; at most {_MAX_NAME}")
        self._check_provider(metadata, name)
        # remote extensions exist up to kwild v0.9 only. A validator whose key did not
        # deploy the database names its dbid (the deployer's) in the metadata.
        local = (metadata.get("local_dbid") or "").strip() or self.local_dbid(name, "v0.9")
        if not _DBID.match(local):
            raise InvalidRequest(f"local_dbid {local[:80]!r} is not a Kwil dbid: leave it out "
                                 "unless this node's key did not deploy the database")
        original = (metadata.get("original_dbid") or "").strip() or local
        if not _DBID.match(original):
            raise InvalidRequest(f"original_dbid {original[:80]!r} is not a Kwil dbid "
                                 "('x' and 56 lowercase hex digits): copy it from the first "
                                 "provider, or leave it out on the first provider")
        completed = dict(metadata)
        completed.update(local_db_name=name, provider_address=self.signer.address,
                         local_dbid=local, original_dbid=original)
        self._on_sync(original, local)
        return completed

    def sync(self, original_dbid: str, local_dbid: str) -> None:
        """Start restore-then-follow (the 2023 DbSyncService.Sync)."""
        if not original_dbid or not local_dbid:
            raise InvalidRequest("Sync needs originalDbid and localProviderDbid")
        self._on_sync(original_dbid, local_dbid)

    def save_from_metadata(self, metadata: Mapping[str, str], action_name: str,
                           values: Sequence[str]) -> SavedAction:
        """save_action as kwild calls it, with the metadata Initialize returned."""
        name = self._metadata_name(metadata)
        return self.save(local_db_name=name, original_dbid=metadata.get("original_dbid", ""),
                         local_dbid=metadata.get("local_dbid", ""), action_name=action_name,
                         values=values)

    def _metadata_name(self, metadata: Mapping[str, str]) -> str:
        name = metadata.get("local_db_name", "")
        if not name:
            raise InvalidRequest("Execute metadata lacks local_db_name: the database was not "
                                 "initialized by db_sync; redeploy its schema")
        self._check_provider(metadata, name)
        return name

    def _check_provider(self, metadata: Mapping[str, str], name: str) -> None:
        """Metadata completed earlier (kwild re-sends it at node start) must name our key."""
        provider = metadata.get("provider_address")
        if provider and provider.lower() != self.signer.address.lower():
            raise WrongProvider(
                f"database {name} was initialized by provider {provider}, but this shim signs "
                f"as {self.signer.address}: start the shim with that provider's key")

    def save(self, *, local_db_name: str, action_name: str, values: Sequence[str],
             original_dbid: str = "", local_dbid: str = "") -> SavedAction:
        """Build, sign and store the record of one action; answer only once it is on disk.

        Raises:
            InvalidRequest: Unknown action, wrong argument count, oversize document.
            CatalogUnavailable: The local provider could not be asked for parameters.
        """
        if not local_db_name or not action_name:
            raise InvalidRequest("save_action needs a database name and an action name")
        local = local_dbid or self.local_dbid(local_db_name)
        original = original_dbid or local
        key = action_id(original, action_name, list(values))
        known = self.outbox.get(key)
        if known is not None:  # a repeat: the stored answer, even if the provider is down
            return SavedAction(known)
        data = self._document(local, action_name, values)

        def build(sequence: int, prev: str) -> DataItem:
            return build_record(self.signer, original_dbid=original, local_dbid=local,
                                local_db_name=local_db_name, action_name=action_name,
                                data=data, sequence=sequence, prev_action_id=prev,
                                created_at_ms=time.time_ns() // 1_000_000)

        try:
            stored = self.outbox.save(action_id=key, provider=self.signer.address,
                                      original_dbid=original, build=build)
        except (RecordError, TagError) as exc:
            raise InvalidRequest(f"cannot write the record of {action_name}: {exc}") from exc
        if not stored.repeated:
            self._on_saved()
        return SavedAction(stored)

    def _document(self, local: str, action_name: str, values: Sequence[str]
                  ) -> list[tuple[str, str]]:
        """Name each value after the action's parameter; refuse what cannot be a record."""
        try:
            names = self.catalog.parameters(local, action_name)
        except UnknownActionError as exc:
            raise InvalidRequest(str(exc)) from exc
        if len(names) != len(values):
            listed = ", ".join(names) or "no parameters"
            raise InvalidRequest(f"action {action_name} takes {len(names)} argument(s) "
                                 f"({listed}); save_action got {len(values)}")
        data = list(zip(names, values, strict=True))
        size = len(_encode_document(action_name, data))
        if size > MAX_DOCUMENT_BYTES:
            raise InvalidRequest(f"the record of {action_name} would be {size} bytes, over the "
                                 f"{MAX_DOCUMENT_BYTES}-byte limit: store large values elsewhere "
                                 "and pass a reference")
        return data
