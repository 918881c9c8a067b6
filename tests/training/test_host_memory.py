"""Huge pages for malloc's large blocks (bert_jax/training/host_memory.py): when the entry
points re-execute, that the process comes back once with the same arguments, and that
glibc then really backs a large malloc with huge pages."""

import os
import subprocess
import sys
import textwrap

import pytest

from bert_jax.training import host_memory
from bert_jax.training.host_memory import TUNABLE, tunables_with_huge_pages

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GLIBC = (2, 36)
APPLIES = host_memory.thp_mode() == "madvise" and (host_memory.glibc_version() or (0,)) >= (
    2, 35)
needs_madvise_thp = pytest.mark.skipif(
    not APPLIES, reason="needs Linux with THP mode madvise and glibc >= 2.35")


@pytest.mark.parametrize("env,mode,glibc,expected", [
    ({}, "madvise", GLIBC, f"{TUNABLE}=1"),
    # The user's own tunables are kept; the new one goes after them.
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "madvise", GLIBC,
     f"glibc.malloc.arena_max=2:{TUNABLE}=1"),
    ({"GLIBC_TUNABLES": f"{TUNABLE}=0"}, "madvise", GLIBC, None),  # the user's choice
    ({"GLIBC_TUNABLES": f"{TUNABLE}=1"}, "madvise", GLIBC, None),  # done: no second exec
    ({"BERT_JAX_HUGE_PAGES": "0"}, "madvise", GLIBC, None),  # the opt-out
    ({"BERT_JAX_HUGE_PAGES": "1"}, "madvise", GLIBC, f"{TUNABLE}=1"),
    ({"BERT_JAX_HUGE_PAGES": "Off"}, "madvise", GLIBC, None),
    ({}, "always", GLIBC, None),  # the kernel already gives huge pages
    ({}, "never", GLIBC, None),  # ... or never does
    ({}, None, GLIBC, None),  # not Linux, no THP
    ({}, "madvise", None, None),  # musl or another C library
    ({}, "madvise", (2, 34), None),  # glibc before the tunable
])
def test_when_the_process_is_re_executed(env, mode, glibc, expected):
    assert tunables_with_huge_pages(env, mode, glibc) == expected


def test_a_misspelt_opt_out_is_an_error_not_ignored():
    with pytest.raises(ValueError, match="BERT_JAX_HUGE_PAGES must be 0 .* or 1, got 'of'"):
        tunables_with_huge_pages({"BERT_JAX_HUGE_PAGES": "of"}, "madvise", GLIBC)
    run = subprocess.run([sys.executable, "-m", "experiments.pretrain", "--help"], cwd=ROOT,
                         env=dict(os.environ, BERT_JAX_HUGE_PAGES="of"), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert run.stderr.strip() == ("error: BERT_JAX_HUGE_PAGES must be 0 (no huge pages for "
                                  "host memory) or 1, got 'of'")


def test_huge_pages_active():
    on = {"GLIBC_TUNABLES": f"glibc.malloc.arena_max=2:{TUNABLE}=1"}
    assert host_memory.huge_pages_active({}, "always")
    assert not host_memory.huge_pages_active({}, "never")
    assert not host_memory.huge_pages_active({"GLIBC_TUNABLES": f"{TUNABLE}=0"}, "madvise")
    if host_memory.glibc_version():
        assert host_memory.huge_pages_active(on, "madvise")
        assert not host_memory.huge_pages_active({}, "madvise")


def test_thp_mode_reads_the_bracketed_choice(tmp_path):
    path = tmp_path / "enabled"
    path.write_text("always [madvise] never\n")
    assert host_memory.thp_mode(str(path)) == "madvise"
    assert host_memory.thp_mode(str(tmp_path / "absent")) is None


_SCRIPT = textwrap.dedent("""
    import os, sys
    print("run", os.environ.get("GLIBC_TUNABLES"), sys.argv[1:], flush=True)
    from bert_jax.training.host_memory import reexec_with_huge_pages
    reexec_with_huge_pages()
    print("continued", os.environ.get("GLIBC_TUNABLES"), os.getpid(), flush=True)
""")


def _run(code, *args, **env):
    environ = {k: v for k, v in os.environ.items()
               if k not in ("GLIBC_TUNABLES", "BERT_JAX_HUGE_PAGES")}
    environ.update(env, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code, *args], env=environ,
                          capture_output=True, text=True, timeout=120, check=True).stdout


@needs_madvise_thp
def test_reexec_comes_back_once_with_the_same_arguments():
    lines = _run(_SCRIPT, "--flag", "x y").splitlines()
    assert lines[0] == "run None ['--flag', 'x y']"
    assert lines[1] == f"run {TUNABLE}=1 ['--flag', 'x y']"  # the same command, re-executed
    assert lines[2].startswith(f"continued {TUNABLE}=1 ") and len(lines) == 3  # and only once
    opted_out = _run(_SCRIPT, BERT_JAX_HUGE_PAGES="0").splitlines()
    assert [line.split()[0] for line in opted_out] == ["run", "continued"]


# A block far above malloc's mmap threshold, filled with memset: the page faults it takes.
_FAULTS = textwrap.dedent("""
    import ctypes, resource
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    size = 256 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(ctypes.c_size_t(size))
    ctypes.memset(block, 1, size)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


@needs_madvise_thp
def test_the_tunable_gives_malloc_huge_pages():
    """256 MiB are 65,536 pages of 4 KiB but 128 of 2 MiB: with the tunable, the fill takes
    a small fraction of the faults (allowing for pages the kernel could not make huge)."""
    small = int(_run(_FAULTS))
    huge = int(_run(_FAULTS, GLIBC_TUNABLES=f"{TUNABLE}=1"))
    assert small > 60_000
    assert huge < small / 8, (huge, small)
