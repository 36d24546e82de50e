"""What the HTTP-based sources share: turning a transport failure into the phrase a user needs."""

_MARKERS = (
    "Connection refused",
    "Name or service not known",
    "too many",
    "timed out",
    "certificate verify failed",
)


def failure_reason(exc: Exception) -> str:
    """The telling part of a requests/urllib3 error ("Connection refused", "too many 503 error
    responses"), not its nested repr."""
    text = str(exc)
    for marker in _MARKERS:
        if marker in text:
            start = text.find(marker)
            end = text.find(")", start)
            return text[start : end if end != -1 else None].strip("'\" ")
    return text.split(": ", 1)[-1][:160]
