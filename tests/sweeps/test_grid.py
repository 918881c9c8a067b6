"""Sweep grids: product x zipped x seeds, point names, up-front validation, and commands
whose --config.<field> flags parse back to the point's values."""

import json
import subprocess
import sys

import ml_collections
import pytest

from bert_jax.sweeps import SweepError, expand
from bert_jax.sweeps.grid import command
from tests.experiments import runs

ALBERT = "configs/pretrain/albert_tiny.py"


def sweep(base=ALBERT, **fields):
    c = ml_collections.ConfigDict()
    c.base = base
    c.overrides, c.product, c.zipped, c.seeds = {}, {}, {}, (0,)
    for key, value in fields.items():
        c[key] = value
    return c


def test_product_zipped_and_seeds_multiply():
    points = expand(sweep(
        base="configs/pretrain/bert_tiny.py",
        product={"masking": {"strategy": ("token", "span")}},
        zipped={"sentence_task": {"data": {"sentence_task": ("nsp", "sop", "none")},
                                  "model": {"next_sentence": (True, False, False),
                                            "sentence_order": (False, True, False)}}},
        seeds=(0, 1)))
    assert len(points) == 2 * 3 * 2
    assert [p.name for p in points[:3]] == ["000-strategy=token,sentence_task=nsp,seed=0",
                                            "001-strategy=token,sentence_task=nsp,seed=1",
                                            "002-strategy=token,sentence_task=sop,seed=0"]
    sop = points[2]
    assert sop.levels == {"strategy": "token", "sentence_task": "sop", "seed": "0"}
    assert sop.overrides == {"masking.strategy": "token", "data.sentence_task": "sop",
                             "model.next_sentence": False, "model.sentence_order": True,
                             "seed": 0}
    assert (sop.config.data.sentence_task, sop.config.model.sentence_order) == ("sop", True)
    assert points[-1].config.seed == 1 and points[-1].config.masking.strategy == "span"
    assert len({p.name for p in points}) == len(points)  # one sub-workdir each


def test_overrides_apply_to_every_point_and_names_are_stable():
    s = sweep(overrides={"train": {"num_steps": 7}},
              product={"model": {"share_layers": ("all", "none"), "embedding_size": (32, 64)}})
    points = expand(s)
    assert [p.name for p in points] == [p.name for p in expand(s)]
    assert points[1].name == "001-embedding_size=32,share_layers=none,seed=0"
    assert all(p.num_steps == 7 for p in points)
    assert [(p.config.model.embedding_size, p.config.model.share_layers) for p in points] == [
        (32, "all"), (32, "none"), (64, "all"), (64, "none")]


def test_zipped_level_without_a_namesake_field_joins_its_values():
    (a, b) = expand(sweep(zipped={"rate": {"masking": {"mask_rate": (0.15, 0.3),
                                                       "max_predictions_per_seq": (10, 20)}}}))
    assert (a.levels["rate"], b.levels["rate"]) == ("0.15+10", "0.3+20")  # fields sorted


@pytest.mark.parametrize("fields, message", [
    (dict(product={"model": {"share_layer": ("all",)}}),
     "point 0 (000-share_layer=all,seed=0): unknown config field 'model.share_layer'"),
    (dict(product={"model": {"embedding_size": (32, "64")}}),
     "point 1 (001-embedding_size=64,seed=0): model.embedding_size='64' has type str, but "
     "the field's type is int"),
    (dict(overrides={"train": {"num_steps": 1.5}}),
     "overrides: train.num_steps=1.5 has type float"),
    (dict(zipped={"task": {"data": {"sentence_task": ("nsp", "sop")},
                           "model": {"next_sentence": (True,)}}}),
     "zipped axis 'task': its fields move together, so each needs the same number of values"),
    (dict(product={"model": {"embedding_size": ()}}),
     "product.model.embedding_size: give a non-empty tuple of values"),
    (dict(product={"data": {"sentence_task": ("sop", "nsp")}}),  # the model's head is SOP
     "point 1 (001-sentence_task=nsp,seed=0): data.sentence_task is 'nsp' but the model's "
     "sentence head is 'sop'"),
    (dict(product={"seed": (1, 2)}), "two axes have the same name"),
    (dict(product={"model": {"share_layers": ("all",)}},
          zipped={"x": {"model": {"share_layers": ("none",)}}}), "on more than one axis"),
    (dict(base="configs/pretrain/no_such.py"), "config file 'configs/pretrain/no_such.py' "
     "does not exist"),
])
def test_bad_sweeps_are_refused_before_anything_runs(fields, message):
    with pytest.raises(SweepError) as err:
        expand(sweep(**fields))
    assert message in str(err.value)


def test_command_flags_parse_back_to_the_point_config(tmp_path):
    s = sweep(overrides={"train": {"learning_rate": 0.0125}, "data": {"lowercase": False}},
              product={"model": {"share_layers": ("ffn",)},
                       "masking": {"mask_rate": (0.3,), "static": (True,)},
                       "data": {"text_files": (("a b.txt", "c.txt"),)}})
    (point,) = expand(s)
    argv = command(s, point, str(tmp_path))
    assert argv[1:4] == ["-m", "experiments.pretrain", f"--config={ALBERT}"]
    assert argv[4] == f"--workdir={tmp_path}/{point.name}"
    # ml_collections parses them as the pretraining CLI would (in a process of its own: the
    # override flags register on absl's global FLAGS).
    parse = ("import json, sys; from absl import flags; from ml_collections import "
             "config_flags; c = config_flags.DEFINE_config_file('config', lock_config=True); "
             "flags.FLAGS(sys.argv); print(json.dumps(c.value.to_dict()))")
    out = subprocess.run([sys.executable, "-c", parse, argv[3], *argv[5:]], cwd=runs.ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == json.loads(json.dumps(point.config.to_dict()))


@pytest.mark.parametrize("name, count", [("sentence_task", 3), ("masking", 8),
                                         ("albert_sharing", 6)])
def test_shipped_sweeps_expand_and_validate(name, count):
    from bert_jax.sweeps.grid import load_config_file

    points = expand(load_config_file(f"configs/sweeps/{name}.py"))
    assert len(points) == count
    assert all(p.config.train.fill_in_examples == 0 for p in points)
