"""Test set-up: 8 emulated CPU devices, set before JAX initialises its backends."""
import os

# Two flags make XLA's CPU compiler faster for the suite, which is mostly compiling:
# - LLVM's -O0: a tiny BERT's train step compiles ~1.4x faster and runs slower;
# - XLA:CPU's older element-wise code generator, not its MLIR fusion emitters, which set up
#   MLIR for every fusion: at -O0 the same step compiles in 1.9-2.0 s instead of 2.9-3.3 s
#   and runs as fast (`python -m experiments.benchmark --model tiny --seq_len 32
#   --batch_size 16 --steps 3`), and the suite takes about a quarter less time (README,
#   Tests). At XLA's default level it is the other way round (BERT-base compiled in 14.7 s
#   instead of 10.9 s, and ran slower), so only the suite uses it.
# Neither changes XLA's own passes (fusion, layouts, scheduling), so the programs under test
# are the same; values may differ in the last bits. Setting XLA_FLAGS yourself replaces all
# three flags.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                                   "--xla_backend_optimization_level=0 "
                                   "--xla_cpu_use_fusion_emitters=false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# JAX's persistent compilation cache, keyed by program, compile options and JAX version, so a
# changed program never hits a stale entry. XLA compiles are most of the suite's time: the
# second run of an unchanged test module takes about a third as long. Subprocesses that
# tests start inherit it. Set JAX_COMPILATION_CACHE_DIR to move it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(
        os.path.expanduser("~"), ".cache", "bert_jax", "jax_test_programs")
    # A size cap makes JAX keep the cache as an LRU, with a file of access times beside
    # each entry. Only in the suite's own directory: in one that other JAX processes also
    # fill without a cap (yours), their entries have no such files and every write of the
    # suite fails (JAX warns "Error writing persistent compilation cache entry").
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(2 * 2**30))  # bytes
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drops compiled executables between test modules. The whole suite in one process
    otherwise accumulates hundreds of them, and XLA's CPU compiler has crashed (abort/segfault)
    compiling AMBERT's step late in such a run, though that test passes on its own."""
    yield
    import jax

    jax.clear_caches()
