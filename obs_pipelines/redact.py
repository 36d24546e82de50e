"""Text fit to print or store: the credentials of any URL in it masked.

Total by design: error paths call these on whatever they hold, so they never raise.
"""

import re
from collections.abc import Iterable

# scheme://userinfo@ : userinfo runs to the last '@' before the host (as urlparse reads it, so a
# raw '@' in a password is masked too); it never holds '/', '?', '#', whitespace or quotes.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s'\"<>]+@")


def redact_url(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***@``."""
    try:
        return _USERINFO.sub(r"\g<scheme>***@", text if isinstance(text, str) else str(text))
    except Exception:  # an unprintable object must not hide the error being reported
        return "<unprintable>"


def redact_secrets(text: str, values: Iterable[str | None]) -> str:
    """``text`` with every non-empty value in ``values`` replaced by ``***``, and URLs redacted."""
    text = text if isinstance(text, str) else redact_url(text)
    try:
        secrets = sorted({v for v in values if isinstance(v, str) and v}, key=len, reverse=True)
    except Exception:  # a broken iterable: mask URLs at least
        secrets = []
    for value in secrets:
        text = text.replace(value, "***")
    return redact_url(text)
