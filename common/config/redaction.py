"""No secret leaves a run in its messages, logs or files: the password of a URL (a database for a shared
search, `--hp_search_storage postgresql://user:secret@host/db`) is shown as `postgresql://user:***@host/db`."""

import logging
import re

URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s/:@]*:)([^\s/@]+)(@)")


def without_credentials(text: str) -> str:
    """`text` with the password of every URL in it masked."""
    return URL_PASSWORD.sub(r"\1***\3", text)


def without_credentials_in(values):
    """A setting's value (a string, or lists and mappings of them) with the passwords of its URLs masked."""
    if isinstance(values, str):
        return without_credentials(values)
    if isinstance(values, dict):
        return {key: without_credentials_in(value) for key, value in values.items()}
    if isinstance(values, (list, tuple)):
        return type(values)(without_credentials_in(value) for value in values)
    return values


class MaskCredentials(logging.Filter):
    """A log handler's filter: every record's message with the passwords of its URLs masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's message; every record passes."""
        message = record.getMessage()
        masked = without_credentials(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
