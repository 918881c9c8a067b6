"""Quiet transformers (progress bars, load reports) when the dev requirements are there."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the Hub

try:
    import transformers
except ImportError:
    transformers = None
if transformers is not None:
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
