"""A mistake in the settings (a config file, a flag, a combination of them): like `DataError`, it ends the
run with its message alone and exit status 2 (common.config.process.run_main)."""

import importlib.util


class OptionError(ValueError):
    """A bad setting; the message names the option or the config file."""


def require_extra(package: str, option: str, extra: str) -> None:
    """An option whose package is an optional extra (pyproject.toml): the install command, not an ImportError."""
    if importlib.util.find_spec(package) is None:
        raise OptionError(f"{option} needs the {package} package, which is not installed: "
                          f"pip install -e \".[{extra}]\" (or pip install {package})")
