"""Loading the component and calling its exports through wasmtime-py.

One `wasmtime.Engine` per process (unless the caller brings one); the
component is compiled once per (engine, path) and cached. An `Instance` is
one store and one instantiation. Its imports are trapping stubs: on the step
path the component never calls them. A trap (or any failure inside a call)
poisons the instance; the owner must drop it and make a new one.
"""

from __future__ import annotations

import ctypes
import os
import threading
from ctypes import byref
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Linker, FuncType

from . import _codec
from .errors import ComponentError, ComponentTrap

ENV_COMPONENT = "PLEO_OAUTH_COMPONENT"
PACKAGE = "pleo:oauth"

_lock = threading.Lock()
_default_engine: wasmtime.Engine | None = None
_components: dict[tuple[int, str], "Loaded"] = {}


def default_engine() -> wasmtime.Engine:
    global _default_engine
    with _lock:
        if _default_engine is None:
            _default_engine = wasmtime.Engine()
        return _default_engine


def component_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path is None:
        value = os.environ.get(ENV_COMPONENT)
        if not value:
            raise ComponentError(
                f"{ENV_COMPONENT} is not set: point it at the pleo-oauth component "
                "(.wasm), e.g. `pleo-oauth component pleo-oauth.wasm` writes one"
            )
        path = value
    resolved = Path(path)
    if not resolved.is_file():
        raise ComponentError(f"no component at {resolved} ({ENV_COMPONENT} or the path given)")
    return resolved


class Loaded:
    """A compiled component and its linker (trapping imports)."""

    def __init__(self, engine: wasmtime.Engine, path: Path) -> None:
        self.engine = engine
        self.path = path
        try:
            self.component = Component.from_file(engine, str(path))
        except wasmtime.WasmtimeError as e:
            raise ComponentError(f"{path} is not a loadable component: {e}") from None
        self.exports: dict[str, str] = {}
        for name in self.component.type.exports(engine):
            # "pleo:oauth/classify@0.3.0" -> "classify"
            if name.startswith(PACKAGE + "/"):
                self.exports[name[len(PACKAGE) + 1:].split("@", 1)[0]] = name
        for needed in ("classify", "authorize"):
            if needed not in self.exports:
                raise ComponentError(f"{path} does not export {PACKAGE}/{needed}")
        self.linker = Linker(engine)
        self.linker.define_unknown_imports_as_traps(self.component)

    @property
    def has_steps(self) -> bool:
        return "steps" in self.exports


def load(path: str | os.PathLike[str] | None = None, engine: wasmtime.Engine | None = None) -> Loaded:
    """The compiled component at `path` (default: $PLEO_OAUTH_COMPONENT), cached per engine."""
    engine = engine or default_engine()
    resolved = component_path(path).resolve()
    key = (id(engine), str(resolved))
    with _lock:
        loaded = _components.get(key)
        if loaded is None:
            loaded = Loaded(engine, resolved)
            _components[key] = loaded
        return loaded


class _Func:
    __slots__ = ("raw", "params", "result")

    def __init__(self, raw: Any, ftype: FuncType) -> None:
        self.raw = raw
        self.params = [ty for _, ty in ftype.params]
        self.result = ftype.result


class Instance:
    """One instantiation of the component in its own store."""

    def __init__(self, loaded: Loaded) -> None:
        self.loaded = loaded
        self.store = wasmtime.Store(loaded.engine)
        try:
            self.instance = loaded.linker.instantiate(self.store, loaded.component)
        except wasmtime.WasmtimeError as e:
            raise ComponentError(f"cannot instantiate {loaded.path}: {e}") from None
        self.poisoned = False
        self._funcs: dict[tuple[str, str], _Func] = {}

    def func(self, interface: str, name: str) -> _Func:
        key = (interface, name)
        found = self._funcs.get(key)
        if found is None:
            export = self.loaded.exports.get(interface)
            if export is None:
                raise ComponentError(f"the component does not export {PACKAGE}/{interface}")
            iface = self.instance.get_export_index(self.store, export)
            index = self.instance.get_export_index(self.store, name, iface) if iface else None
            raw = ffi.wasmtime_component_func_t()
            if index is None or not ffi.wasmtime_component_instance_get_func(
                byref(self.instance._instance), self.store._context(), index.ptr(), byref(raw)
            ):
                raise ComponentError(f"the component has no function {interface}.{name}")
            ftype = FuncType._from_ptr(ffi.wasmtime_component_func_type(byref(raw), self.store._context()))
            found = _Func(raw, ftype)
            self._funcs[key] = found
        return found

    def call(self, interface: str, name: str, *args: Any) -> Any:
        """Calls `interface.name`; arguments and result in the codec's form."""
        if self.poisoned:
            raise ComponentTrap("this instance trapped before and must not be used again")
        f = self.func(interface, name)
        if len(args) != len(f.params):
            raise TypeError(f"{interface}.{name} takes {len(f.params)} arguments, got {len(args)}")
        params = (ffi.wasmtime_component_val_t * max(len(args), 1))()
        lowered = 0
        try:
            for i, (ty, value) in enumerate(zip(f.params, args)):
                _codec.lower(self.store, ty, value, ctypes.pointer(params[i]), f"{name}#{i}")
                lowered += 1
            result_space = ffi.wasmtime_component_val_t()
            nresults = 0 if f.result is None else 1
            error = ffi.wasmtime_component_func_call(
                byref(f.raw), self.store._context(), params, len(args),
                byref(result_space) if nresults else None, nresults,
            )
            if error:
                self.poisoned = True
                message = wasmtime.WasmtimeError._from_ptr(error)
                raise ComponentTrap(f"{interface}.{name} trapped: {message}")
            try:
                return None if f.result is None else _codec.lift(f.result, result_space)
            except BaseException:
                self.poisoned = True
                raise
        finally:
            for i in range(lowered):
                ffi.wasmtime_component_val_delete(byref(params[i]))
