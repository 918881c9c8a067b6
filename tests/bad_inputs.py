"""The catalogue of bad inputs: each one must stop the run with a clear error (what, where,
how to fix) before anything compiles, and leave everything already saved as it was.

tests/test_bad_inputs.py runs every case; the README's bad-input table is generated from the
same cases and the messages they really produce:

    python -m tests.bad_inputs              # prints the table
    python -m tests.bad_inputs --readme     # rewrites it in README.md

Each case is run through `loop.train_and_evaluate` (the library call behind the CLI, whose
error types the CLI prints as `error: <message>` and exit status 1), or, for command-line
mistakes, through a real `python -m experiments.pretrain` process.
"""
from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
BEGIN, END = "<!-- bad-inputs:begin -->", "<!-- bad-inputs:end -->"
TEN_MB = 10 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input.

    name: the README's "input" column.
    expect: a substring the message must contain.
    overrides: config overrides {"section.field": value}; "{tmp}" in a string value is the
        case's directory.
    files: files the case writes first, {relative path: bytes or a function of the case dir
        returning bytes}.
    workdir: "fresh" (an empty directory) or "finished" (a copy of a finished run of the base
        config, which must come out unchanged).
    cli: command-line flags: the case runs as a real process instead of in-process.
    fault: "disk_full" makes every checkpoint write after the first fail with ENOSPC.
    before_compile: the error comes before the train step is built (checkpoints can only be
        found unreadable by restoring them into the built state).
    """
    name: str
    expect: str
    overrides: dict = dataclasses.field(default_factory=dict)
    files: dict = dataclasses.field(default_factory=dict)
    workdir: str = "fresh"
    cli: tuple = ()
    fault: str | None = None
    before_compile: bool = True


def _vocab_without_mask(_):
    from bert_jax.data.tokenizer import DEFAULT_VOCAB_PATH

    lines = open(DEFAULT_VOCAB_PATH, encoding="utf-8").read().splitlines()
    return ("\n".join(t for t in lines if t != "[MASK]") + "\n").encode()


def _one_sentence_documents(_):
    docs = [f"Document number {i} has only this sentence in it." for i in range(300)]
    return ("\n\n".join(docs) + "\n").encode()


def _text(path):  # a good corpus, for cases whose fault is elsewhere
    return {"data.corpus": "text_files", "data.text_files": (path,)}


CASES = [
    Case("empty corpus (a 0-byte text file)", "yields zero instances",
         _text("{tmp}/empty.txt"), {"empty.txt": b""}),
    Case("a text file of only blank lines", "yields zero instances",
         _text("{tmp}/blank.txt"), {"blank.txt": b"\n\n  \n\t\n" * 100}),
    Case("non-UTF-8 bytes (a Latin-1 file)", "line 2: not valid UTF-8",
         files={"latin1.txt": "First line.\nCaf\u00e9 au lait.\n".encode("latin-1")},
         cli=("--config.data.corpus=text_files",
              "--config.data.text_files=('{tmp}/latin1.txt',)")),
    Case("a 10 MB single line", "10,485,761 bytes in one line",
         _text("{tmp}/long.txt"), {"long.txt": b"word " * (TEN_MB // 5) + b"\n"}),
    Case("NSP on documents shorter than 2 sentences", "documents of at least 2 sentences",
         _text("{tmp}/single.txt"), {"single.txt": _one_sentence_documents}),
    Case("text_files glob that matches no file", "matches no file",
         _text("{tmp}/missing/*.txt")),
    Case("missing vocab file", "does not exist; set data.vocab_path",
         {"data.vocab_path": "{tmp}/vocab.txt"}),
    Case("vocab file without a [MASK] token", "[MASK]",
         {"data.vocab_path": "{tmp}/vocab.txt"}, {"vocab.txt": _vocab_without_mask}),
    Case("model.vocab_size smaller than the vocab file", "smaller than the tokenizer's",
         {"model.vocab_size": 1000}),
    Case("data.max_seq_len beyond the position table", "longer than model.max_position",
         {"data.max_seq_len": 64}),
    Case("global batch not divisible by the device count", "must be divisible by the number "
         "of devices", {"train.batch_size": 12}),
    Case("hidden size not divisible by the head count", "not divisible by model.num_heads",
         {"model.num_heads": 3}),
    Case("a value outside its choices", "train.nonfinite must be 'skip' or 'stop'",
         {"train.nonfinite": "ignore"}),
    Case("cuDNN attention on a machine without a GPU", "needs an NVIDIA GPU",
         {"model.attention_impl": "cudnn"}),
    Case("unknown variant of a config file", "unknown config variant 'tpu'",
         cli=("--config=configs/pretrain/bert_base.py:tpu",)),
    Case("init_from a path that does not exist", "train.init_from=",
         {"train.init_from": "{tmp}/no_such_checkpoint"}),
    Case("--workdir that is a file", "is a file, not a directory", workdir="file"),
    Case("unknown config field on the command line", 'Did you mean "batch_size"',
         cli=("--config.train.batchsize=5",)),
    Case("wrong type on the command line", "invalid literal for int()",
         cli=("--config.train.batch_size=abc",)),
    Case("a workdir holding another model's checkpoint", "belongs to another model",
         {"model.intermediate_size": 128}, workdir="finished"),
    Case("resuming under a changed config", "was written under a different config",
         {"train.learning_rate": 5e-3}, workdir="finished"),
    Case("every checkpoint in the workdir unreadable", "can be read",
         workdir="finished_damaged", before_compile=False),
    Case("disk full while saving a checkpoint (simulated)", "No space left on device",
         fault="disk_full", before_compile=False),
]


def snapshot(directory) -> dict[str, str]:
    """{relative path: sha256} of every file under `directory` (empty if it is missing)."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return out


def _fill(value, tmp):
    if isinstance(value, str):
        return value.replace("{tmp}", str(tmp))
    if isinstance(value, tuple):
        return tuple(_fill(v, tmp) for v in value)
    return value


def prepare(case: Case, tmp, finished_workdir) -> str:
    """Writes the case's files and workdir under `tmp`; returns the workdir."""
    os.makedirs(tmp, exist_ok=True)
    for rel, content in case.files.items():
        with open(os.path.join(tmp, rel), "wb") as f:
            f.write(content(tmp) if callable(content) else content)
    workdir = os.path.join(tmp, "w")
    if case.workdir == "file":
        with open(workdir, "w") as f:
            f.write("not a directory\n")
    elif case.workdir.startswith("finished"):
        shutil.copytree(finished_workdir, workdir)
        if case.workdir == "finished_damaged":
            checkpoints = os.path.join(workdir, "checkpoints")
            for step in os.listdir(checkpoints):
                shutil.rmtree(os.path.join(checkpoints, step, "state"))
    return workdir


class DiskFull:
    """Makes orbax's JSON item writes fail with ENOSPC after `allow` checkpoints, in the
    background thread that really writes them: the failure reaches the loop as a real full
    disk's would."""

    def __init__(self, allow: int = 1):
        from orbax.checkpoint._src.handlers import json_checkpoint_handler as handler

        self.handler, self.allow, self.written = handler.JsonCheckpointHandler, allow, set()
        self.original = self.handler._save_fn

    def __enter__(self):
        fault = self

        async def save_fn(handler, item, directory):
            step_dir = os.path.basename(os.path.dirname(str(directory)))
            fault.written.add(step_dir)
            if len(fault.written) > fault.allow:
                raise OSError(errno.ENOSPC, "No space left on device", str(directory))
            return await fault.original(handler, item, directory)

        self.handler._save_fn = save_fn
        return self

    def __exit__(self, *exc):
        self.handler._save_fn = self.original


def run_case(case: Case, tmp, corpus, finished_workdir, make_config) -> str:
    """Runs one case; returns the error message (raises AssertionError if there is none)."""
    from bert_jax.training import loop
    from tests.experiments.runs import ROOT

    workdir = prepare(case, tmp, finished_workdir)
    if case.cli:
        proc = subprocess.run(
            [sys.executable, "-m", "experiments.pretrain", f"--workdir={workdir}",
             f"--config.data.tfds_data_dir={tmp}/tfds", f"--config.data.cache_dir={tmp}/cache",
             *_fill(case.cli, tmp)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
        assert len(lines) == 1, proc.stderr[-3000:]
        return lines[0][len("error: "):]
    config = make_config(corpus, **{k: _fill(v, tmp) for k, v in case.overrides.items()})
    try:
        if case.fault == "disk_full":
            with DiskFull():
                loop.train_and_evaluate(config, workdir)
        else:
            loop.train_and_evaluate(config, workdir)
    except loop.USER_ERRORS as err:
        return str(err)
    raise AssertionError(f"{case.name}: the run did not stop")


def normalise(message: str, tmp) -> str:
    """The message with the case's temporary directory written as <tmp>, and paths inside this
    checkout relative to it, so the table is the same in every clone."""
    message = message.replace(os.path.realpath(str(tmp)), "<tmp>").replace(str(tmp), "<tmp>")
    message = message.replace(os.path.dirname(README) + os.sep, "")  # the checkout's own path
    return re.sub(r"/tmp/\S*?/(w|tfds|cache)\b", r"<tmp>/\1", message)


def table(messages: dict[str, str]) -> str:
    rows = ["| bad input | message (`python -m experiments.pretrain` prints `error: ` + this, "
            "exit status 1) |", "|---|---|"]
    for case in CASES:
        text = messages[case.name].replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {case.name} | {text} |")
    return "\n".join(rows)


def readme_block() -> str:
    text = open(README, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        return ""
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def write_readme(block: str) -> None:
    text = open(README, encoding="utf-8").read()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    with open(README, "w", encoding="utf-8") as f:
        f.write(text[:start] + "\n" + block + "\n" + text[end:])


def main(argv):
    import tempfile

    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from bert_jax.training import loop
    from tests.data.conftest import write_google_corpus
    from tests.training.test_loop import make_config

    root = pathlib.Path(tempfile.mkdtemp(prefix="bad_inputs."))
    corpus = (root, [str(write_google_corpus(root / "corpus.txt", 400, seed=3))])  # as test_loop
    finished = os.path.join(root, "finished")
    loop.train_and_evaluate(make_config(corpus), finished)
    messages = {}
    for i, case in enumerate(CASES):
        tmp = os.path.join(root, f"case{i}")
        messages[case.name] = normalise(run_case(case, tmp, corpus, finished, make_config), tmp)
    block = table(messages)
    if "--readme" in argv:
        write_readme(block)
    print(block)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
