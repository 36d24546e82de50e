"""Alertmanager's identity of an alert: the fingerprint of its label set.

Alertmanager and Prometheus name an alert by ``model.LabelSet.Fingerprint()`` from
prometheus/common (``labelSetToFingerprint`` in ``model/signature.go``): FNV-1a 64 over the label
names in byte order, each name and value followed by the separator byte 0xff, printed as 16 hex
digits. Computing the same number here lets fragments derived from Prometheus's ``ALERTS`` series
join Alertmanager's ``/api/v2/alerts`` rows (silences, inhibitions, receivers) on one key.
"""

from collections.abc import Mapping

_FNV_OFFSET_64 = 0xCBF29CE484222325  # 14695981039346656037
_FNV_PRIME_64 = 0x100000001B3  # 1099511628211
_MASK_64 = 0xFFFFFFFFFFFFFFFF
SEPARATOR_BYTE = 0xFF  # cannot occur in UTF-8, so names and values never run together


def fingerprint_int(labels: Mapping[str, str]) -> int:
    """The 64-bit fingerprint of ``labels`` (an empty set hashes to the FNV offset basis)."""
    value = _FNV_OFFSET_64
    # Go sorts label names as byte strings; Python's code-point order is the same for UTF-8.
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME_64) & _MASK_64
            value = ((value ^ SEPARATOR_BYTE) * _FNV_PRIME_64) & _MASK_64
    return value


def fingerprint(labels: Mapping[str, str]) -> str:
    """The fingerprint as Alertmanager prints it: 16 lower-case hex digits."""
    return f"{fingerprint_int(labels):016x}"
