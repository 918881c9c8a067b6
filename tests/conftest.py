"""Test set-up: 8 emulated CPU devices, set before JAX initialises its backends."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    """Drops compiled executables between test modules. The whole suite in one process
    otherwise accumulates hundreds of them, and XLA's CPU compiler has crashed (abort/segfault)
    compiling AMBERT's step late in such a run, though that test passes on its own."""
    yield
    import jax

    jax.clear_caches()
