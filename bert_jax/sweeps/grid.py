"""A sweep config -> its points: each a set of field overrides of one base pretraining config.

A sweep config file has `get_config()` returning a ConfigDict whose fields mirror the
pretraining config's own tree (so any of them can be changed on the command line too):

    c.base = "configs/pretrain/albert_tiny.py"    # the pretraining config every point starts from
    c.overrides = {"train": {"num_steps": 400}}   # set in every point
    c.product = {"model": {"share_layers": ("all", "none"), "embedding_size": (32, 128)}}
    c.zipped = {"sentence_task": {                # a named axis whose fields move together
        "data": {"sentence_task": ("nsp", "sop")},
        "model": {"next_sentence": (True, False), "sentence_order": (False, True)}}}
    c.seeds = (0, 1, 2)                           # sets `seed`; the last, fastest-varying axis

Every leaf of `product` is an axis of its own; each entry of `zipped` is one axis (its fields'
value tuples have equal lengths, level i takes the i-th value of each). The points are the
Cartesian product of all axes, in the order product axes, zipped axes, seeds, each group
sorted by name (ConfigDict keeps its keys sorted), the last axis varying fastest.

Every point's config is resolved and checked (`config.validate`) before anything runs, so a
misspelt field, a value of the wrong type or a combination the model refuses stops the sweep
with one line naming the point and the field.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import itertools
import os
import re
import shlex
import sys
from typing import Any

import ml_collections

from bert_jax import config as config_lib

PRETRAIN_MODULE = "experiments.pretrain"


class SweepError(ValueError):
    """A sweep config that cannot run; the message names the point and field."""


@dataclasses.dataclass(frozen=True)
class Axis:
    """One dimension of the grid: `levels[i]` is a {dotted field: value} dict."""
    name: str
    levels: tuple[dict[str, Any], ...]
    labels: tuple[str, ...]  # how level i reads in point names, tables and plots


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of the sweep."""
    index: int
    name: str                    # the sub-workdir's name: "003-share_layers=none,seed=1"
    levels: dict[str, str]       # axis name -> its level's label at this point
    overrides: dict[str, Any]    # dotted field -> value, every axis's fields (seed included)
    config: ml_collections.ConfigDict  # the base config with sweep and point overrides

    @property
    def num_steps(self) -> int:
        return self.config.train.num_steps


def load_config_file(path: str) -> ml_collections.ConfigDict:
    """`get_config()` of a Python config file (as ml_collections' --config flag loads it)."""
    if not os.path.isfile(path):
        raise SweepError(f"config file {path!r} does not exist")
    name = "_sweep_base_" + re.sub(r"\W", "_", os.path.abspath(path))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def leaves(tree, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted path, value) of every non-ConfigDict value of a nested ConfigDict."""
    if not isinstance(tree, (ml_collections.ConfigDict, dict)):
        return [(prefix, tree)]
    found = []
    for key, value in tree.items():
        found += leaves(value, f"{prefix}.{key}" if prefix else key)
    return found


def _values(field: str, values, where: str) -> tuple:
    if not isinstance(values, (tuple, list)) or not values:
        raise SweepError(f"{where}{field}: give a non-empty tuple of values, got {values!r}")
    return tuple(values)


def _label(value: Any) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def axes_of(sweep: ml_collections.ConfigDict) -> list[Axis]:
    """The grid's axes: each product leaf, each zipped entry, then the seeds."""
    axes = []
    for field, values in leaves(sweep.get("product", {})):
        values = _values(field, values, "product.")
        axes.append(Axis(field, tuple({field: v} for v in values),
                         tuple(_label(v) for v in values)))
    for name, group in sweep.get("zipped", {}).items():
        fields = [(f, _values(f, v, f"zipped.{name}.")) for f, v in leaves(group)]
        lengths = {f: len(v) for f, v in fields}
        if not fields or len(set(lengths.values())) != 1:
            raise SweepError(f"zipped axis {name!r}: its fields move together, so each needs "
                             f"the same number of values; got {lengths or 'no fields'}")
        levels = tuple(dict(zip(lengths, level)) for level in zip(*(v for _, v in fields)))
        # A level reads as its namesake field's value ("sentence_task=sop"), else all values.
        own = [f for f in lengths if f.rsplit(".", 1)[-1] == name]
        labels = tuple(_label(lv[own[0]]) if own else "+".join(map(_label, lv.values()))
                       for lv in levels)
        axes.append(Axis(name, levels, labels))
    seeds = _values("seeds", sweep.get("seeds", (0,)), "")
    axes.append(Axis("seed", tuple({"seed": s} for s in seeds), tuple(map(str, seeds))))
    short = [a.name.rsplit(".", 1)[-1] for a in axes]
    # Columns and names use the last part of a field's path unless two axes share it.
    axes = [dataclasses.replace(a, name=s if short.count(s) == 1 else a.name)
            for a, s in zip(axes, short)]
    names = [a.name for a in axes]
    if len(set(names)) != len(names):
        raise SweepError(f"two axes have the same name: {names} (seeds go in `seeds`, not "
                         "in `product`; name zipped axes apart from product fields)")
    fields = [f for a in axes for f in a.levels[0]]
    twice = sorted({f for f in fields if fields.count(f) > 1})
    if twice:
        raise SweepError(f"field(s) {twice} are on more than one axis; keep each on one")
    return axes


def set_field(config: ml_collections.ConfigDict, field: str, value: Any, where: str) -> None:
    """config.<field> = value, refusing unknown fields and values of another type."""
    *parents, last = field.split(".")
    node = config
    try:
        for part in parents:
            node = node[part]
        if not isinstance(node, ml_collections.ConfigDict) or last not in node:
            raise KeyError(last)
        if isinstance(node[last], tuple) and isinstance(value, list):
            value = tuple(value)
        node[last] = value
    except KeyError:
        raise SweepError(f"{where}: unknown config field {field!r} (not in the base "
                         "config; see bert_jax/config.py and bert_jax/data/pipeline.py)") from None
    except TypeError:
        raise SweepError(f"{where}: {field}={value!r} has type {type(value).__name__}, but "
                         f"the field's type is {type(node[last]).__name__} "
                         f"(base value {node[last]!r})") from None


def expand(sweep: ml_collections.ConfigDict) -> list[Point]:
    """Every point of the sweep, each config resolved and validated."""
    base = load_config_file(sweep.base)
    base.lock()
    for field, value in leaves(sweep.get("overrides", {})):
        set_field(base, field, value, "overrides")
    axes = axes_of(sweep)
    points = []
    for index, combo in enumerate(itertools.product(*(range(len(a.levels)) for a in axes))):
        levels = {a.name: a.labels[i] for a, i in zip(axes, combo)}
        overrides = {f: v for a, i in zip(axes, combo) for f, v in a.levels[i].items()}
        name = f"{index:03d}-" + ",".join(f"{k}={v}" for k, v in levels.items())
        config = copy.deepcopy(base)  # still locked: no new fields
        where = f"point {index} ({name})"
        for field, value in overrides.items():
            set_field(config, field, value, where)
        try:  # devices are the child's business: its own validate checks the batch split
            config_lib.validate(config, num_devices=1)
        except config_lib.ConfigError as err:
            raise SweepError(f"{where}: {err}") from None
        points.append(Point(index, name, levels, overrides, config))
    return points


def flag_value(value: Any) -> str:
    """A value as ml_collections' --config.<field>= flag parses it back."""
    if isinstance(value, (tuple, list)):
        return repr(tuple(value))
    return str(value) if isinstance(value, (bool, str)) else repr(value)


def command(sweep: ml_collections.ConfigDict, point: Point, workdir: str,
            python: str = sys.executable) -> list[str]:
    """The pretraining command of one point (what the runner runs and --dry_run prints)."""
    fixed = leaves(sweep.get("overrides", {}))
    return [python, "-m", PRETRAIN_MODULE, f"--config={sweep.base}",
            f"--workdir={os.path.join(workdir, point.name)}",
            *(f"--config.{f}={flag_value(v)}" for f, v in [*fixed, *point.overrides.items()])]


def shell_line(argv: list[str]) -> str:
    return shlex.join(argv)
