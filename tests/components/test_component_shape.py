"""Every component has the shape pulumi/examples give theirs: ``Name(name, NameArgs, opts)``
registered as ``larry:index:Name``, its Args a frozen dataclass."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re
import typing

import pulumi

import components


def component_classes() -> list[type[pulumi.ComponentResource]]:
    found = []
    for info in pkgutil.iter_modules(components.__path__, "components."):
        module = importlib.import_module(info.name)
        found += [cls for cls in vars(module).values() if inspect.isclass(cls)
                  and issubclass(cls, pulumi.ComponentResource) and cls.__module__ == module.__name__]
    return found


def test_each_component_takes_name_its_args_dataclass_and_opts():
    classes = component_classes()
    assert {cls.__name__ for cls in classes} == {
        "Catalog", "ClusterReader", "Larry", "LarryNamespace", "MetaCoordinator", "Observability", "RedisHA"}
    for cls in classes:
        assert list(inspect.signature(cls.__init__).parameters) == ["self", "name", "args", "opts"], cls
        args = typing.get_type_hints(cls.__init__)["args"]
        assert args.__name__ == f"{cls.__name__}Args", cls
        assert dataclasses.is_dataclass(args) and args.__dataclass_params__.frozen, args


def test_each_component_registers_its_type_token(dev, cortex):
    registered = {r.typ for graph in (dev, cortex) for r in graph.resources}
    assert {f"larry:index:{cls.__name__}" for cls in component_classes()} <= registered


def test_each_args_field_is_read_by_its_component():
    # Args hold only what the component uses: a field nothing reads is a dependency in name only.
    for cls in component_classes():
        source = inspect.getsource(inspect.getmodule(cls))
        args = typing.get_type_hints(cls.__init__)["args"]
        unread = [f.name for f in dataclasses.fields(args) if not re.search(rf"args\.{f.name}\b", source)]
        assert unread == [], f"{args.__name__}: {unread}"
