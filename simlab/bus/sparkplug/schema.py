"""The Sparkplug B 3.0 payload schema, built at run time from a descriptor written in Python.

No ``protoc``, no generated code, no ``.proto`` file: the message classes are made from a
``FileDescriptorProto`` assembled below from the field definitions of the Sparkplug 3.0
specification (chapter 6.4, "Sparkplug B MQTT Payload Definition"). Field numbers and wire
types are facts of the wire format; the layout of this module is our own. The schema is
proto2 (explicit field presence), like the specification's, so ``HasField`` tells whether
``seq`` or ``is_null`` were sent at all.

The classes live in a private :class:`~google.protobuf.descriptor_pool.DescriptorPool`, so
another Sparkplug schema loaded by some other package into the default pool never clashes
with ours. This is the only module of simlab that imports protobuf, and only
:mod:`simlab.bus.sparkplug.codec` uses it: everything outside the package sees our own
dataclasses, never a protobuf message or exception.

To check the schema against another implementation's wire bytes, see
``tests/bus/test_sparkplug.py::test_decodes_hand_assembled_wire_bytes``.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import (  # type: ignore[import-untyped, unused-ignore]
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    unknown_fields,
)
from google.protobuf.message import DecodeError  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "DECODE_ERRORS",
    "PACKAGE",
    "PAYLOAD_CLASS",
    "file_descriptor_proto",
    "unknown_field_numbers",
]

PACKAGE: Final = "simlab.sparkplug_b"
"""Protobuf package of our schema. Package names never travel on the wire."""

_FD = descriptor_pb2.FieldDescriptorProto
_OPTIONAL: Final = _FD.LABEL_OPTIONAL
_REPEATED: Final = _FD.LABEL_REPEATED

# Field kinds by the spec's protobuf type names.
_KIND: Final[dict[str, int]] = {
    "uint32": _FD.TYPE_UINT32,
    "uint64": _FD.TYPE_UINT64,
    "float": _FD.TYPE_FLOAT,
    "double": _FD.TYPE_DOUBLE,
    "bool": _FD.TYPE_BOOL,
    "string": _FD.TYPE_STRING,
    "bytes": _FD.TYPE_BYTES,
}

# A field is (name, number, kind, repeated, oneof); a kind that is not a scalar type name is
# a message name relative to ``Payload`` ("Metric", "DataSet.Row", ...).
_Field = tuple[str, int, str, bool, str | None]

# Every message of the schema, nested under Payload as in the specification. Written from
# the spec's component definitions (6.4.5 Payload … 6.4.15 Template.Parameter).
_MESSAGES: Final[dict[str, list[_Field]]] = {
    "": [  # Payload itself
        ("timestamp", 1, "uint64", False, None),
        ("metrics", 2, "Metric", True, None),
        ("seq", 3, "uint64", False, None),
        ("uuid", 4, "string", False, None),
        ("body", 5, "bytes", False, None),
    ],
    "Metric": [
        ("name", 1, "string", False, None),
        ("alias", 2, "uint64", False, None),
        ("timestamp", 3, "uint64", False, None),
        ("datatype", 4, "uint32", False, None),
        ("is_historical", 5, "bool", False, None),
        ("is_transient", 6, "bool", False, None),
        ("is_null", 7, "bool", False, None),
        ("metadata", 8, "MetaData", False, None),
        ("properties", 9, "PropertySet", False, None),
        ("int_value", 10, "uint32", False, "value"),
        ("long_value", 11, "uint64", False, "value"),
        ("float_value", 12, "float", False, "value"),
        ("double_value", 13, "double", False, "value"),
        ("boolean_value", 14, "bool", False, "value"),
        ("string_value", 15, "string", False, "value"),
        ("bytes_value", 16, "bytes", False, "value"),
        ("dataset_value", 17, "DataSet", False, "value"),
        ("template_value", 18, "Template", False, "value"),
        ("extension_value", 19, "Metric.MetricValueExtension", False, "value"),
    ],
    "Metric.MetricValueExtension": [],
    "MetaData": [
        ("is_multi_part", 1, "bool", False, None),
        ("content_type", 2, "string", False, None),
        ("size", 3, "uint64", False, None),
        ("seq", 4, "uint64", False, None),
        ("file_name", 5, "string", False, None),
        ("file_type", 6, "string", False, None),
        ("md5", 7, "string", False, None),
        ("description", 8, "string", False, None),
    ],
    "PropertyValue": [
        ("type", 1, "uint32", False, None),
        ("is_null", 2, "bool", False, None),
        ("int_value", 3, "uint32", False, "value"),
        ("long_value", 4, "uint64", False, "value"),
        ("float_value", 5, "float", False, "value"),
        ("double_value", 6, "double", False, "value"),
        ("boolean_value", 7, "bool", False, "value"),
        ("string_value", 8, "string", False, "value"),
        ("propertyset_value", 9, "PropertySet", False, "value"),
        ("propertysets_value", 10, "PropertySetList", False, "value"),
        ("extension_value", 11, "PropertyValue.PropertyValueExtension", False, "value"),
    ],
    "PropertyValue.PropertyValueExtension": [],
    "PropertySet": [
        ("keys", 1, "string", True, None),
        ("values", 2, "PropertyValue", True, None),
    ],
    "PropertySetList": [
        ("propertyset", 1, "PropertySet", True, None),
    ],
    "DataSet": [
        ("num_of_columns", 1, "uint64", False, None),
        ("columns", 2, "string", True, None),
        ("types", 3, "uint32", True, None),
        ("rows", 4, "DataSet.Row", True, None),
    ],
    "DataSet.DataSetValue": [
        ("int_value", 1, "uint32", False, "value"),
        ("long_value", 2, "uint64", False, "value"),
        ("float_value", 3, "float", False, "value"),
        ("double_value", 4, "double", False, "value"),
        ("boolean_value", 5, "bool", False, "value"),
        ("string_value", 6, "string", False, "value"),
        ("extension_value", 7, "DataSet.DataSetValue.DataSetValueExtension", False, "value"),
    ],
    "DataSet.DataSetValue.DataSetValueExtension": [],
    "DataSet.Row": [
        ("elements", 1, "DataSet.DataSetValue", True, None),
    ],
    "Template": [
        ("version", 1, "string", False, None),
        ("metrics", 2, "Metric", True, None),
        ("parameters", 3, "Template.Parameter", True, None),
        ("template_ref", 4, "string", False, None),
        ("is_definition", 5, "bool", False, None),
    ],
    "Template.Parameter": [
        ("name", 1, "string", False, None),
        ("type", 2, "uint32", False, None),
        ("int_value", 3, "uint32", False, "value"),
        ("long_value", 4, "uint64", False, "value"),
        ("float_value", 5, "float", False, "value"),
        ("double_value", 6, "double", False, "value"),
        ("boolean_value", 7, "bool", False, "value"),
        ("string_value", 8, "string", False, "value"),
        ("extension_value", 9, "Template.Parameter.ParameterValueExtension", False, "value"),
    ],
    "Template.Parameter.ParameterValueExtension": [],
}


def _message(path: str, root: Any) -> Any:
    """The ``DescriptorProto`` for ``path`` ("" = Payload), created inside ``root`` on demand."""
    message = root
    for part in [p for p in path.split(".") if p]:
        nested = next((m for m in message.nested_type if m.name == part), None)
        if nested is None:
            nested = message.nested_type.add(name=part)
        message = nested
    return message


def file_descriptor_proto() -> Any:
    """Build the ``FileDescriptorProto`` of the Sparkplug B payload schema (proto2)."""
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="simlab/sparkplug_b.proto", package=PACKAGE, syntax="proto2"
    )
    payload = file_proto.message_type.add(name="Payload")
    for path, fields in _MESSAGES.items():
        message = _message(path, payload)
        oneofs: list[str] = []
        for name, number, kind, repeated, oneof in fields:
            field = message.field.add(
                name=name, number=number, label=_REPEATED if repeated else _OPTIONAL
            )
            if kind in _KIND:
                field.type = _KIND[kind]
            else:
                field.type = _FD.TYPE_MESSAGE
                field.type_name = f".{PACKAGE}.Payload.{kind}"
            if oneof is not None:
                if oneof not in oneofs:
                    oneofs.append(oneof)
                    message.oneof_decl.add(name=oneof)
                field.oneof_index = oneofs.index(oneof)
    return file_proto


def _payload_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_descriptor_proto())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.Payload"))


PAYLOAD_CLASS: Final[Any] = _payload_class()
"""The protobuf message class of a Sparkplug B ``Payload`` (nested classes hang off it:
``PAYLOAD_CLASS.Metric``, ``PAYLOAD_CLASS.PropertySet``, ...)."""

DECODE_ERRORS: Final[tuple[type[Exception], ...]] = (DecodeError, ValueError, RuntimeError)
"""What parsing bytes with :data:`PAYLOAD_CLASS` may raise on malformed input."""


def unknown_field_numbers(message: Any) -> list[int]:
    """Field numbers present on the wire of ``message`` that the schema does not define."""
    unknown: Any = unknown_fields.UnknownFieldSet(message)
    return [int(f.field_number) for f in unknown]
