"""The one exception for bad input: recipes turn it into a message and exit status 2 (common.config.process)."""


class DataError(ValueError):
    """Bad input data; the message names the file and line (or row)."""
