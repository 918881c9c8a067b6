"""Where the suite's time goes: `python -m pytest -p tests.compile_time`.

A pytest plugin that adds up, per test file, the wall time of its tests (setup, call and
teardown) and JAX's own duration events during them: XLA's backend compile, tracing to a
jaxpr, lowering to MLIR, and reads from the persistent compilation cache. Under
pytest-xdist each worker counts its own files and the controller prints the sum of all.
The wall times of files that ran side by side overlap, so their sum exceeds the suite's
wall time.
"""

import collections
import json
import time

import pytest

# JAX's event name -> column.
EVENTS = {
    "/jax/core/compile/backend_compile_duration": "compile",
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/compilation_cache/cache_retrieval_time_sec": "cache read",
}
COLUMNS = ("wall", *EVENTS.values())

_files: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
_current = [None]
_worker_results: list[dict] = []


def _on_event(name: str, seconds: float, **_):
    column = EVENTS.get(name)
    if column is not None and _current[0] is not None:
        _files[_current[0]][column] += seconds


def merge(parts) -> dict[str, dict[str, float]]:
    """Per-file sums of several workers' {file: {column: seconds}}."""
    total = collections.defaultdict(collections.Counter)
    for part in parts:
        for path, columns in part.items():
            total[path].update(columns)
    return {path: dict(columns) for path, columns in total.items()}


def table(files: dict[str, dict[str, float]], top: int = 15) -> list[str]:
    """The `top` files by wall time, then the sums over every file."""
    lines = ["  ".join(f"{c:>10}" for c in COLUMNS) + "  file (seconds)"]
    rows = sorted(files.items(), key=lambda kv: -kv[1].get("wall", 0.0))
    for path, columns in rows[:top]:
        lines.append("  ".join(f"{columns.get(c, 0.0):10.2f}" for c in COLUMNS) + f"  {path}")
    total = collections.Counter()
    for columns in files.values():
        total.update(columns)
    lines.append("  ".join(f"{total.get(c, 0.0):10.2f}" for c in COLUMNS)
                 + f"  all {len(files)} files")
    return lines


def pytest_configure(config):
    import jax

    jax.monitoring.register_event_duration_secs_listener(_on_event)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    path = item.nodeid.split("::")[0]
    _current[0] = path
    start = time.perf_counter()
    yield
    _files[path]["wall"] += time.perf_counter() - start
    _current[0] = None


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["compile_time"] = json.dumps(merge([_files]))


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook, on the controller
def pytest_testnodedown(node, error):
    output = getattr(node, "workeroutput", {}).get("compile_time")
    if output:
        _worker_results.append(json.loads(output))


def pytest_terminal_summary(terminalreporter):
    files = merge([_files, *_worker_results])
    if files:
        terminalreporter.write_sep("=", "time per test file (tests/compile_time.py)")
        for line in table(files):
            terminalreporter.write_line(line)
