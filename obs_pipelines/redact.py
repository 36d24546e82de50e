"""Text fit to print or store: the credentials of any URL in it masked.

Total by design: error paths call these on whatever they hold, so they never raise.
"""

import contextlib
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


def secret_forms(value: str) -> set[str]:
    """Every spelling of ``value`` an error message may quote: as is, stripped, escaped as
    ``repr`` and ``ascii`` write it (a newline as ``\\n``) and as bytes
    (``b'...\\xe2\\x82\\xac'``). Masking only the raw value let a token ending in a newline
    escape into "unreachable ('Bearer token\\n')"."""
    forms = {value, value.strip(), repr(value)[1:-1], ascii(value)[1:-1]}
    for encoding in ("utf-8", "latin-1"):
        with contextlib.suppress(UnicodeEncodeError):
            forms.add(repr(value.encode(encoding))[2:-1])
    return {form for form in forms if form}


def redact_secrets(text: str, values: Iterable[str | None]) -> str:
    """``text`` with every non-empty value in ``values`` (in each of its :func:`secret_forms`)
    replaced by ``***``, and URLs redacted."""
    text = text if isinstance(text, str) else redact_url(text)
    try:
        forms = {f for v in values if isinstance(v, str) and v for f in secret_forms(v)}
        secrets = sorted(forms, key=len, reverse=True)
    except Exception:  # a broken iterable: mask URLs at least
        secrets = []
    for value in secrets:
        text = text.replace(value, "***")
    return redact_url(text)
