"""Kubernetes protobuf: what kubectl's typed clients send, and the OpenAPI v2 document kubectl reads.

    decode_object(body) -> dict      an enveloped object (`k8s\\x00` + runtime.Unknown) as its JSON form
    encode_openapi_v2(doc) -> bytes  a swagger 2.0 document as gnostic's openapi_v2.Document

Written from the published wire formats (see each module). ProtobufError: a malformed body (400);
UnsupportedKind: a well-formed one this server does not read (415).
"""

from localcluster.api.protobuf._kubernetes import MAGIC, ProtobufError, UnsupportedKind, decode_object
from localcluster.api.protobuf._openapi import encode_openapi_v2

__all__ = [
    "MAGIC",
    "ProtobufError",
    "UnsupportedKind",
    "decode_object",
    "encode_openapi_v2",
]
