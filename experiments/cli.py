"""What the CLIs that take an ml_collections --config share: one-line errors for bad flags."""

import sys

from absl import flags
from ml_collections import config_flags


def _unknown_field(err: BaseException):
    hint = err.args[0] if err.args else err
    while isinstance(hint, BaseException) and hint.args:  # AttributeError(KeyError(msg))
        hint = hint.args[0]
    hint = str(hint).replace("\n", "; ")
    sys.exit(f"error: unknown config field in the command line: {hint}")


def define_config_file(default, help_string):
    """config_flags.DEFINE_config_file (locked), but a misspelt --config.<field> on the
    command line is one line and exit status 1, not a traceback."""
    try:
        return config_flags.DEFINE_config_file("config", default, help_string, lock_config=True)
    except (AttributeError, KeyError) as err:  # with a default, overrides apply here ...
        _unknown_field(err)


def parse_flags(argv):
    """absl's parser, but a bad flag value gets one line, not a traceback."""
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as err:  # ... with --config given, here
        _unknown_field(err)
    except flags.Error as err:
        message = str(err).strip()
        if "Traceback (most recent call last)" in message:  # a config file's get_config raised
            cause = message.splitlines()[-1].split(": ", 1)[-1]
            message = f"{message.splitlines()[0]} {cause}"
        sys.exit(f"error: {message}\nPass --helpfull to see the flags.")


def quiet_libraries():
    """Warnings only from absl-logging libraries (orbax, TFDS), without TFDS's per-build
    "Using custom data configuration" lines and progress bars: they drown our own output."""
    from absl import logging
    import tensorflow_datasets as tfds

    logging.set_verbosity(logging.WARNING)
    logging.get_absl_handler().addFilter(
        lambda record: "Using custom data configuration" not in record.getMessage())
    tfds.display_progress_bar(False)
