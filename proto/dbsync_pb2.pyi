from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DbSync(_message.Message):
    __slots__ = ("originalDbid", "localProviderDbid", "providerAddress")
    ORIGINALDBID_FIELD_NUMBER: _ClassVar[int]
    LOCALPROVIDERDBID_FIELD_NUMBER: _ClassVar[int]
    PROVIDERADDRESS_FIELD_NUMBER: _ClassVar[int]
    originalDbid: str
    localProviderDbid: str
    providerAddress: str
    def __init__(self, originalDbid: _Optional[str] = ..., localProviderDbid: _Optional[str] = ..., providerAddress: _Optional[str] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: str
    def __init__(self, status: _Optional[str] = ...) -> None: ...
