"""Host memory: back malloc's large blocks with transparent huge pages (Linux, glibc).

XLA's CPU runtime allocates the temporary buffer of each execution with malloc and frees it
when the execution ends: 1.69 GB for BERT-base's train step at batch 8 x 128. glibc serves
a block that large with a fresh mmap every time, so at every step the kernel faults in and
zeroes it again, 4 KiB at a time: 415,000 page faults and 0.8 s of system time per step
on a 2-core CPU machine. glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes
malloc advise transparent huge pages (madvise MADV_HUGEPAGE) for the memory it maps, so
the same step takes about 1,500 faults and 0.2 s (BENCHMARKS.md, "Host memory and the
layer loop", has the measurements and their commands).

glibc reads tunables from the environment when a process starts, so the entry points
(experiments/*.py) call `reexec_with_huge_pages()` first thing: when the kernel gives huge
pages only on request (`madvise`, the usual default) and the tunable is not set yet, it
adds the tunable to GLIBC_TUNABLES and re-executes the same command (same PID, arguments,
working directory and environment otherwise). It does nothing when the kernel's mode is
`always` (huge pages already) or `never`, on other C libraries and systems, when the user
set glibc.malloc.hugetlb themselves, and when BERT_JAX_HUGE_PAGES=0 (the opt-out).
"""

from __future__ import annotations

import os
import re
import sys

OPT_OUT = "BERT_JAX_HUGE_PAGES"  # "0" (or false/off/no): leave malloc as it is
_OFF, _ON = ("0", "false", "off", "no"), ("", "1", "true", "on", "yes")
TUNABLE = "glibc.malloc.hugetlb"
_THP_MODE_FILE = "/sys/kernel/mm/transparent_hugepage/enabled"


def thp_mode(path: str = _THP_MODE_FILE) -> str | None:
    """The kernel's transparent huge page mode ("always", "madvise", "never"), or None
    where there is none (not Linux, no THP)."""
    try:
        with open(path) as f:
            match = re.search(r"\[(\w+)\]", f.read())
    except OSError:
        return None
    return match.group(1) if match else None


def glibc_version() -> tuple[int, int] | None:
    """(major, minor) of the running glibc, or None for another C library."""
    try:
        name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
    except (AttributeError, ValueError, OSError):
        return None
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if name == "glibc" and match else None


def tunables_with_huge_pages(env, mode: str | None,
                             glibc: tuple[int, int] | None) -> str | None:
    """The GLIBC_TUNABLES value to re-execute with, or None to leave the process as it is
    (see the module docstring for when)."""
    tunables = env.get("GLIBC_TUNABLES", "")
    choice = env.get(OPT_OUT, "").strip().lower()
    if choice not in _OFF + _ON:
        raise ValueError(f"{OPT_OUT} must be 0 (no huge pages for host memory) or 1, got "
                         f"{env[OPT_OUT]!r}")
    if (choice in _OFF or mode != "madvise" or glibc is None
            or glibc < (2, 35) or TUNABLE in tunables):
        return None
    return f"{tunables}:{TUNABLE}=1" if tunables else f"{TUNABLE}=1"


def huge_pages_active(env=None, mode: str | None = None) -> bool:
    """Whether this process's large host allocations get transparent huge pages: the
    kernel gives them to every large mapping, or to malloc's because the tunable is on."""
    env = os.environ if env is None else env
    mode = thp_mode() if mode is None else mode
    if mode == "always":
        return True
    return (mode == "madvise" and glibc_version() is not None
            and f"{TUNABLE}=1" in env.get("GLIBC_TUNABLES", "").split(":"))


def reexec_with_huge_pages() -> None:
    """Re-executes this command with huge pages for malloc, where that applies (module
    docstring); returns only when it does not. Call it before anything else of the run:
    whatever the process did before is done again."""
    try:
        tunables = tunables_with_huge_pages(os.environ, thp_mode(), glibc_version())
    except ValueError as err:
        sys.exit(f"error: {err}")
    argv = getattr(sys, "orig_argv", None)  # the interpreter's own arguments, -m included
    if tunables is None or not argv or not sys.executable:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ["GLIBC_TUNABLES"] = tunables
    os.execv(sys.executable, argv)
