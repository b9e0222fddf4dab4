from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SaveActionRequest(_message.Message):
    __slots__ = ("local_db_name", "original_dbid", "local_dbid", "action_name", "values", "tx_hash", "height")
    LOCAL_DB_NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DBID_FIELD_NUMBER: _ClassVar[int]
    ACTION_NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    local_db_name: str
    original_dbid: str
    local_dbid: str
    action_name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    tx_hash: str
    height: int
    def __init__(self, local_db_name: _Optional[str] = ..., original_dbid: _Optional[str] = ..., local_dbid: _Optional[str] = ..., action_name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ..., tx_hash: _Optional[str] = ..., height: _Optional[int] = ...) -> None: ...

class SaveActionResponse(_message.Message):
    __slots__ = ("item_id", "url", "sequence", "action_id", "repeated", "tied", "state")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    REPEATED_FIELD_NUMBER: _ClassVar[int]
    TIED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    url: str
    sequence: int
    action_id: str
    repeated: bool
    tied: bool
    state: str
    def __init__(self, item_id: _Optional[str] = ..., url: _Optional[str] = ..., sequence: _Optional[int] = ..., action_id: _Optional[str] = ..., repeated: _Optional[bool] = ..., tied: _Optional[bool] = ..., state: _Optional[str] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("original_dbid",)
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    original_dbid: str
    def __init__(self, original_dbid: _Optional[str] = ...) -> None: ...

class DatabaseStatus(_message.Message):
    __slots__ = ("original_dbid", "provider_address", "pending", "uploaded", "sequence", "last_action_id", "last_uploaded_id", "untied", "waiting", "unconfirmed", "voided")
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_UPLOADED_ID_FIELD_NUMBER: _ClassVar[int]
    UNTIED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    UNCONFIRMED_FIELD_NUMBER: _ClassVar[int]
    VOIDED_FIELD_NUMBER: _ClassVar[int]
    original_dbid: str
    provider_address: str
    pending: int
    uploaded: int
    sequence: int
    last_action_id: str
    last_uploaded_id: str
    untied: int
    waiting: int
    unconfirmed: int
    voided: int
    def __init__(self, original_dbid: _Optional[str] = ..., provider_address: _Optional[str] = ..., pending: _Optional[int] = ..., uploaded: _Optional[int] = ..., sequence: _Optional[int] = ..., last_action_id: _Optional[str] = ..., last_uploaded_id: _Optional[str] = ..., untied: _Optional[int] = ..., waiting: _Optional[int] = ..., unconfirmed: _Optional[int] = ..., voided: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("databases",)
    DATABASES_FIELD_NUMBER: _ClassVar[int]
    databases: _containers.RepeatedCompositeFieldContainer[DatabaseStatus]
    def __init__(self, databases: _Optional[_Iterable[_Union[DatabaseStatus, _Mapping]]] = ...) -> None: ...

class PendingItemsRequest(_message.Message):
    __slots__ = ("limit", "holder", "lease_seconds")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    limit: int
    holder: str
    lease_seconds: int
    def __init__(self, limit: _Optional[int] = ..., holder: _Optional[str] = ..., lease_seconds: _Optional[int] = ...) -> None: ...

class PendingItem(_message.Message):
    __slots__ = ("item_id", "raw", "original_dbid", "sequence", "action_id")
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    item_id: str
    raw: bytes
    original_dbid: str
    sequence: int
    action_id: str
    def __init__(self, item_id: _Optional[str] = ..., raw: _Optional[bytes] = ..., original_dbid: _Optional[str] = ..., sequence: _Optional[int] = ..., action_id: _Optional[str] = ...) -> None: ...

class ConfirmReport(_message.Message):
    __slots__ = ("confirmed", "voided", "waiting", "unconfirmed", "transactions", "node_error")
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    VOIDED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    UNCONFIRMED_FIELD_NUMBER: _ClassVar[int]
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NODE_ERROR_FIELD_NUMBER: _ClassVar[int]
    confirmed: int
    voided: int
    waiting: int
    unconfirmed: int
    transactions: int
    node_error: str
    def __init__(self, confirmed: _Optional[int] = ..., voided: _Optional[int] = ..., waiting: _Optional[int] = ..., unconfirmed: _Optional[int] = ..., transactions: _Optional[int] = ..., node_error: _Optional[str] = ...) -> None: ...

class PendingItemsResponse(_message.Message):
    __slots__ = ("items", "remaining", "confirmation")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    REMAINING_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[PendingItem]
    remaining: int
    confirmation: ConfirmReport
    def __init__(self, items: _Optional[_Iterable[_Union[PendingItem, _Mapping]]] = ..., remaining: _Optional[int] = ..., confirmation: _Optional[_Union[ConfirmReport, _Mapping]] = ...) -> None: ...

class CallsRequest(_message.Message):
    __slots__ = ("state", "original_dbid")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    state: str
    original_dbid: str
    def __init__(self, state: _Optional[str] = ..., original_dbid: _Optional[str] = ...) -> None: ...

class TiedCallInfo(_message.Message):
    __slots__ = ("action_id", "original_dbid", "action_name", "tx_hash", "height", "call_index", "state", "code", "log", "item_id")
    ACTION_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_DBID_FIELD_NUMBER: _ClassVar[int]
    ACTION_NAME_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CALL_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    ITEM_ID_FIELD_NUMBER: _ClassVar[int]
    action_id: str
    original_dbid: str
    action_name: str
    tx_hash: str
    height: int
    call_index: int
    state: str
    code: int
    log: str
    item_id: str
    def __init__(self, action_id: _Optional[str] = ..., original_dbid: _Optional[str] = ..., action_name: _Optional[str] = ..., tx_hash: _Optional[str] = ..., height: _Optional[int] = ..., call_index: _Optional[int] = ..., state: _Optional[str] = ..., code: _Optional[int] = ..., log: _Optional[str] = ..., item_id: _Optional[str] = ...) -> None: ...

class CallsResponse(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[TiedCallInfo]
    def __init__(self, calls: _Optional[_Iterable[_Union[TiedCallInfo, _Mapping]]] = ...) -> None: ...

class AckUploadedRequest(_message.Message):
    __slots__ = ("item_ids", "receipts")
    class ReceiptsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ITEM_IDS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    item_ids: _containers.RepeatedScalarFieldContainer[str]
    receipts: _containers.ScalarMap[str, str]
    def __init__(self, item_ids: _Optional[_Iterable[str]] = ..., receipts: _Optional[_Mapping[str, str]] = ...) -> None: ...

class AckUploadedResponse(_message.Message):
    __slots__ = ("acknowledged", "unknown_ids")
    ACKNOWLEDGED_FIELD_NUMBER: _ClassVar[int]
    UNKNOWN_IDS_FIELD_NUMBER: _ClassVar[int]
    acknowledged: int
    unknown_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, acknowledged: _Optional[int] = ..., unknown_ids: _Optional[_Iterable[str]] = ...) -> None: ...
