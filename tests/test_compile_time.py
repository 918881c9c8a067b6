"""tests/compile_time.py, the plugin that splits the suite's time by test file."""

import os
import subprocess
import sys

from tests import compile_time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_merge_adds_the_workers_files_and_the_table_sums_them():
    a = {"tests/x.py": {"wall": 3.0, "compile": 2.0}, "tests/y.py": {"wall": 1.0}}
    b = {"tests/x.py": {"wall": 1.0, "trace": 0.5}, "tests/z.py": {"wall": 9.0, "lower": 1.0}}
    files = compile_time.merge([a, b])
    assert files == {"tests/x.py": {"wall": 4.0, "compile": 2.0, "trace": 0.5},
                     "tests/y.py": {"wall": 1.0},
                     "tests/z.py": {"wall": 9.0, "lower": 1.0}}
    lines = compile_time.table(files, top=2)
    assert [line.split()[-1] for line in lines[1:3]] == ["tests/z.py", "tests/x.py"]  # by wall
    assert lines[-1].split()[:5] == ["14.00", "2.00", "0.50", "1.00", "0.00"]  # every file
    assert lines[-1].endswith("all 3 files")


def test_plugin_reports_jax_compiles_per_file_across_xdist_workers(tmp_path):
    """Two files on two workers: each file's row has the compile its test did, which the
    controller only learns from the workers."""
    for name, n in (("test_a.py", 3), ("test_b.py", 5)):
        (tmp_path / name).write_text(
            "import jax, jax.numpy as jnp\n"
            "def f(x):\n"
            "    for i in range(200):  # enough ops for a measurable trace and compile\n"
            "        x = jnp.sin(x) * 0.0 + x\n"
            f"    return x * {n}\n"
            f"def test_it():\n    assert jax.jit(f)(jnp.ones(2)).sum() == {2 * n}\n")
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.compile_time", "-n", "2",
         "--dist", "loadfile", "-o", "addopts=", "-p", "no:cacheprovider", "-q", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout.splitlines()
    start = next(i for i, line in enumerate(out) if "time per test file" in line)
    rows = {line.split()[-1]: [float(v) for v in line.split()[:5]]
            for line in out[start + 2:] if line.split()[-1].endswith(".py")}
    assert set(rows) == {"test_a.py", "test_b.py"}
    for wall, compile_s, trace, lower, _ in rows.values():
        assert 0 < compile_s < wall and trace > 0 and lower > 0
