"""WIT values <-> plain Python values, driven by the component's own types.

wasmtime-py's dynamic conversion leaves a `result` or `variant` untagged
when its cases' Python classes do not overlap, and then cannot lower some
values (for example `err(...)` of `result<option<entry>, storage-error>`).
This codec walks the C values itself and always uses the explicit form the
conformance vectors use (serde's externally tagged JSON, kebab-case):

- record: ``dict`` keyed by the WIT field names;
- variant: the case name (``str``) when it has no payload, else
  ``{case: payload}``; enum: the case name;
- option: ``None`` or the value; result: ``{"ok": v}`` or ``{"err": e}``;
- ``list<u8>``: ``bytes``; other lists: ``list``; tuple: ``tuple``;
- resources: wasmtime's ``ResourceAny``.

Lowering checks every value against the type and raises ``TypeError`` or
``ValueError`` naming the path of the bad value, before the call is made.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component import (
    Bool, U8, U16, U32, U64, S8, S16, S32, S64, String, Char,
    ListType, RecordType, TupleType, VariantType, EnumType, OptionType, ResultType,
    OwnType, BorrowType, ValType,
)

_INT_RANGES = {
    U8: (0, 2**8 - 1), U16: (0, 2**16 - 1), U32: (0, 2**32 - 1), U64: (0, 2**64 - 1),
    S8: (-2**7, 2**7 - 1), S16: (-2**15, 2**15 - 1), S32: (-2**31, 2**31 - 1), S64: (-2**63, 2**63 - 1),
}


def _payload_kind(ty: VariantType) -> list[tuple[str, ValType | None]]:
    cached = getattr(ty, "_pleo_cases", None)
    if cached is None:
        cached = ty.cases
        ty._pleo_cases = cached  # type: ignore[attr-defined]
    return cached


def _record_fields(ty: RecordType) -> list[tuple[str, ValType]]:
    cached = getattr(ty, "_pleo_fields", None)
    if cached is None:
        cached = ty.fields
        ty._pleo_fields = cached  # type: ignore[attr-defined]
    return cached


def _child(ty: Any, attr: str) -> Any:
    name = "_pleo_" + attr
    cached = getattr(ty, name, ffi)
    if cached is ffi:
        cached = getattr(ty, attr)
        setattr(ty, name, cached)
    return cached


def _fail(path: str, why: str) -> TypeError:
    return TypeError(f"{path or 'value'}: {why}")


def _fill(count: int, lower_at: Any, slot: Any, delete: Any, raw: Any) -> None:
    """Lowers `count` elements into the uninitialised C container `raw`,
    `lower_at(i)` writing element `i`. If one fails, every slot not yet
    written gets a value that owns nothing (`slot(j)` is its value), `raw`
    is freed with `delete`, and the error goes on."""
    done = 0
    try:
        for i in range(count):
            lower_at(i)
            done += 1
    except BaseException:
        for j in range(done, count):
            value = slot(j)
            value.kind = ffi.WASMTIME_COMPONENT_BOOL
            value.of.boolean = False
        delete(byref(raw))
        raise


def lower(store: Any, ty: ValType, val: Any, ptr: Any, path: str = "") -> None:
    """Writes `val` as a value of `ty` into the C value at `ptr`."""
    if isinstance(ty, Bool):
        if not isinstance(val, bool):
            raise _fail(path, f"expected a bool, got {type(val).__name__}")
        ty.convert_to_c(store, val, ptr)
    elif type(ty) in _INT_RANGES:
        lo, hi = _INT_RANGES[type(ty)]
        if not isinstance(val, int) or isinstance(val, bool):
            raise _fail(path, f"expected an integer, got {type(val).__name__}")
        if not lo <= val <= hi:
            raise ValueError(f"{path or 'value'}: {val} is out of range for {type(ty).__name__.lower()}")
        ty.convert_to_c(store, val, ptr)
    elif isinstance(ty, (String, Char)):
        if not isinstance(val, str):
            raise _fail(path, f"expected a str, got {type(val).__name__}")
        ty.convert_to_c(store, val, ptr)
    elif isinstance(ty, EnumType):
        if not isinstance(val, str) or val not in _child(ty, "names"):
            # the value itself is not echoed: it could be a secret passed in the wrong place
            raise ValueError(f"{path or 'value'}: a {type(val).__name__} that is not one of {_child(ty, 'names')}")
        ty.convert_to_c(store, val, ptr)
    elif isinstance(ty, ListType):
        element = _child(ty, "element")
        if isinstance(element, U8):
            if isinstance(val, (bytearray, memoryview)):
                val = bytes(val)
            if not isinstance(val, bytes):
                raise _fail(path, f"expected bytes, got {type(val).__name__}")
            _lower_bytes(val, ptr)
            return
        if not isinstance(val, (list, tuple)):
            raise _fail(path, f"expected a list, got {type(val).__name__}")
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, len(val))

        def element_at(i: int) -> None:
            lower(store, element, val[i], ctypes.pointer(raw.data[i]), f"{path}[{i}]")

        _fill(len(val), element_at, lambda j: raw.data[j], ffi.wasmtime_component_vallist_delete, raw)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
        ptr.contents.of.list = raw
    elif isinstance(ty, TupleType):
        elements = _child(ty, "elements")
        if not isinstance(val, (list, tuple)) or len(val) != len(elements):
            raise _fail(path, f"expected a tuple of {len(elements)}")
        raw = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(raw, len(elements))

        def element_at(i: int) -> None:
            lower(store, elements[i], val[i], ctypes.pointer(raw.data[i]), f"{path}[{i}]")

        _fill(len(elements), element_at, lambda j: raw.data[j], ffi.wasmtime_component_valtuple_delete, raw)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_TUPLE
        ptr.contents.of.tuple = raw
    elif isinstance(ty, RecordType):
        fields = _record_fields(ty)
        if not isinstance(val, dict):
            raise _fail(path, f"expected a record (dict), got {type(val).__name__}")
        unknown = set(val) - {name for name, _ in fields}
        if unknown:
            raise ValueError(f"{path or 'value'}: unknown fields {sorted(unknown)}")
        raw = ffi.wasmtime_component_valrecord_t()
        ffi.wasmtime_component_valrecord_new_uninit(raw, len(fields))

        def field_at(i: int) -> None:
            name, fty = fields[i]
            if name in val:
                item = val[name]
            elif isinstance(fty, OptionType):
                item = None
            else:
                raise ValueError(f"{path or 'value'}: missing field {name!r}")
            lower(store, fty, item, ctypes.pointer(raw.data[i].val), f"{path}.{name}")
            raw.data[i].name = ffi.str_to_capi(name)

        _fill(len(fields), field_at, lambda j: raw.data[j].val, ffi.wasmtime_component_valrecord_delete, raw)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_RECORD
        ptr.contents.of.record = raw
    elif isinstance(ty, VariantType):
        cases = dict(_payload_kind(ty))
        tag, payload, has = _tagged(val, path)
        if tag not in cases:
            raise ValueError(f"{path or 'value'}: {tag!r} is not a case of {list(cases)}")
        raw_payload = _lower_payload(store, cases[tag], has, payload, f"{path}.{tag}")
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_VARIANT
        ptr.contents.of.variant.discriminant = ffi.str_to_capi(tag)
        ptr.contents.of.variant.val = raw_payload
    elif isinstance(ty, OptionType):
        raw_payload = None
        if val is not None:
            raw_payload = _lower_payload(store, _child(ty, "payload"), True, val, path)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_OPTION
        ptr.contents.of.option = raw_payload
    elif isinstance(ty, ResultType):
        tag, payload, has = _tagged(val, path)
        if tag not in ("ok", "err"):
            raise ValueError(f"{path or 'value'}: a result is {{'ok': ...}} or {{'err': ...}}")
        case_ty = _child(ty, tag)
        raw_payload = _lower_payload(store, case_ty, has, payload, f"{path}.{tag}")
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_RESULT
        ptr.contents.of.result.is_ok = tag == "ok"
        ptr.contents.of.result.val = raw_payload
    elif isinstance(ty, (OwnType, BorrowType)):
        ty.convert_to_c(store, val, ptr)
    else:
        raise TypeError(f"{path or 'value'}: unsupported WIT type {type(ty).__name__}")


# A `list<u8>` is an array of `wasmtime_component_val_t` (a one-byte kind at
# offset 0 and the payload union after it): build and read it in bulk rather
# than one ctypes call per byte.
_VAL = ffi.wasmtime_component_val_t
_VAL_SIZE = ctypes.sizeof(_VAL)
_VAL_U8 = _VAL.of.offset
_KIND_U8 = ffi.WASMTIME_COMPONENT_U8.value
_FAST_BYTES = _VAL.kind.offset == 0 and _VAL.kind.size == 1


def _lower_bytes(val: bytes, ptr: Any) -> None:
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, len(val))
    if _FAST_BYTES:
        buf = bytearray(len(val) * _VAL_SIZE)
        buf[0::_VAL_SIZE] = bytes([_KIND_U8]) * len(val)
        buf[_VAL_U8::_VAL_SIZE] = val
        if val:
            ctypes.memmove(raw.data, bytes(buf), len(buf))
    else:
        for i, b in enumerate(val):
            raw.data[i].kind = ffi.WASMTIME_COMPONENT_U8
            raw.data[i].of.u8 = b
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _tagged(val: Any, path: str) -> tuple[str, Any, bool]:
    if isinstance(val, str):
        return val, None, False
    if isinstance(val, dict) and len(val) == 1:
        ((tag, payload),) = val.items()
        return tag, payload, True
    raise _fail(path, f"expected a case name or a one-key dict {{case: payload}}, got {type(val).__name__}")


def _lower_payload(store: Any, ty: ValType | None, has: bool, payload: Any, path: str) -> Any:
    if ty is None:
        if has and payload is not None:
            raise ValueError(f"{path}: this case has no payload")
        return None
    if not has:
        raise ValueError(f"{path}: this case needs a payload")
    raw = ffi.wasmtime_component_val_t()
    lower(store, ty, payload, ctypes.pointer(raw), path)
    return ffi.wasmtime_component_val_new(byref(raw))


def lift(ty: ValType, c: Any) -> Any:
    """Reads the C value `c` of type `ty` (and frees what it owns)."""
    if isinstance(ty, ListType):
        element = _child(ty, "element")
        if isinstance(element, U8):
            lst = c.of.list
            try:
                if _FAST_BYTES and lst.size:
                    raw = ctypes.string_at(lst.data, lst.size * _VAL_SIZE)
                    return raw[_VAL_U8::_VAL_SIZE]
                return bytes([lst.data[i].of.u8 for i in range(lst.size)])
            finally:
                ffi.wasmtime_component_vallist_delete(byref(c.of.list))
        try:
            out = []
            for i in range(c.of.list.size):
                item = c.of.list.data[i]
                out.append(lift(element, item))
                item.kind = ffi.WASMTIME_COMPONENT_BOOL
                item.of.boolean = False
            return out
        finally:
            ffi.wasmtime_component_vallist_delete(byref(c.of.list))
    if isinstance(ty, TupleType):
        try:
            out = []
            for i, ety in zip(range(c.of.tuple.size), _child(ty, "elements")):
                item = c.of.tuple.data[i]
                out.append(lift(ety, item))
                item.kind = ffi.WASMTIME_COMPONENT_BOOL
                item.of.boolean = False
            return tuple(out)
        finally:
            ffi.wasmtime_component_valtuple_delete(byref(c.of.tuple))
    if isinstance(ty, RecordType):
        try:
            rec = {}
            for i, (name, fty) in zip(range(c.of.record.size), _record_fields(ty)):
                field = c.of.record.data[i]
                rec[name] = lift(fty, field.val)
                field.val.kind = ffi.WASMTIME_COMPONENT_BOOL
                field.val.of.boolean = False
            return rec
        finally:
            ffi.wasmtime_component_valrecord_delete(byref(c.of.record))
    if isinstance(ty, VariantType):
        tag = ffi.to_str(c.of.variant.discriminant)
        ffi.wasm_byte_vec_delete(byref(c.of.variant.discriminant))
        cty = dict(_payload_kind(ty))[tag]
        if cty is None:
            return tag
        return {tag: _lift_payload(cty, c.of.variant.val)}
    if isinstance(ty, OptionType):
        if not c.of.option:
            return None
        return _lift_payload(_child(ty, "payload"), c.of.option)
    if isinstance(ty, ResultType):
        tag = "ok" if c.of.result.is_ok else "err"
        cty = _child(ty, tag)
        if cty is None:
            return {tag: None}
        return {tag: _lift_payload(cty, c.of.result.val)}
    return ty.convert_from_c(c)


def _lift_payload(ty: ValType, ptr: Any) -> Any:
    value = lift(ty, ptr.contents)
    ptr.contents.kind = ffi.WASMTIME_COMPONENT_BOOL
    ptr.contents.of.boolean = False
    ffi.wasmtime_component_val_delete(ptr)
    return value
