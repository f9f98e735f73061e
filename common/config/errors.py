"""A mistake in the settings (a config file, a flag, a combination of them): like `DataError`, it ends the
run with its message alone and exit status 2 (common.config.process.run_main)."""


class OptionError(ValueError):
    """A bad setting; the message names the option or the config file."""
