"""Run an ablation sweep: every point of a grid of config overrides, each in its own
sub-workdir, then a summary table and plots.

    python -m experiments.sweep --config configs/sweeps/sentence_task.py --workdir sweeps/st
    python -m experiments.sweep --config ... --workdir DIR --dry_run        # one command per point
    python -m experiments.sweep --config ... --workdir DIR --index $SLURM_ARRAY_TASK_ID
    python -m experiments.sweep --config ... --workdir DIR --summarize_only

Rerunning skips finished points and resumes unfinished ones. All the work is
`bert_jax.sweeps.run_sweep`.
"""

if __name__ == "__main__":  # first, since it may restart the process: huge pages for XLA:CPU
    from bert_jax.training.host_memory import reexec_with_huge_pages

    reexec_with_huge_pages()

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags
from ml_collections import config_flags

from experiments import cli

_CONFIG = cli.define_config_file(None, "Sweep config file (configs/sweeps/*.py).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Sweep directory: one sub-workdir per point, summary.csv, summary.md, "
    "plots/. Default: sweeps/<config file name>.")
_DRY_RUN = flags.DEFINE_bool(
    "dry_run", False, "Print one pretraining command per point (for a cluster scheduler) and "
    "run nothing.")
_INDEX = flags.DEFINE_integer(
    "index", None, "Run only this point (0-based; an array job's task index); no summary.")
_SUMMARIZE_ONLY = flags.DEFINE_bool(
    "summarize_only", False, "Only (re)write the summary and plots from what the points hold.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        sys.exit("error: --config is required (a sweep config, e.g. "
                 "configs/sweeps/sentence_task.py)")
    from bert_jax.sweeps import SweepError, run_sweep

    name = os.path.splitext(os.path.basename(
        config_flags.get_config_filename(flags.FLAGS["config"])))[0]
    try:
        status = run_sweep(_CONFIG.value, _WORKDIR.value or os.path.join("sweeps", name),
                           index=_INDEX.value, dry_run=_DRY_RUN.value,
                           summarize_only=_SUMMARIZE_ONLY.value, title=f"sweep {name}")
    except SweepError as err:
        sys.exit(f"error: {err}")
    sys.exit(status)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.parse_flags)
