"""Tamper-evident results: an HMAC-SHA256 signature over the canonical JSON of a result.

An apprentice's result file travels (a USB stick, a learning platform upload); the course
secret stays with the instructor. :func:`sign_result` adds a ``signature`` field,
:func:`verify_result` recomputes it: any edit of any field (one point more, a check
flipped to passed, a field added or removed) makes verification fail.

The canonical JSON is ``json.dumps`` with sorted keys, no whitespace, UTF-8 and no NaN or
infinity. Verify the dictionary as read from the file, not a re-serialized object: ``3``
and ``3.0`` are different texts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from grading.model import GradingError

__all__ = [
    "SIGNATURE_FIELD",
    "SIGNATURE_PREFIX",
    "SigningError",
    "canonical_json",
    "sign_result",
    "verify_result",
]

SIGNATURE_FIELD = "signature"
SIGNATURE_PREFIX = "hmac-sha256:"


class SigningError(GradingError):
    """A result that cannot be signed: no course secret, or data that is not JSON."""


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``data``: sorted keys, no whitespace, UTF-8, strict JSON."""
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise SigningError(f"the result is not plain JSON data: {err}") from None
    return text.encode("utf-8")


def _digest(data: Mapping[str, Any], course_secret: str) -> str:
    if not course_secret:
        raise SigningError(
            "the course secret is empty; set the course's secret before signing or verifying"
        )
    unsigned = {k: v for k, v in data.items() if k != SIGNATURE_FIELD}
    mac = hmac.new(course_secret.encode("utf-8"), canonical_json(unsigned), hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def sign_result(result_dict: Mapping[str, Any], course_secret: str) -> dict[str, Any]:
    """A copy of ``result_dict`` with ``signature`` set (an existing one is replaced)."""
    signed = {k: v for k, v in result_dict.items() if k != SIGNATURE_FIELD}
    signed[SIGNATURE_FIELD] = _digest(signed, course_secret)
    return signed


def verify_result(result_dict: Mapping[str, Any], course_secret: str) -> bool:
    """True when ``result_dict`` carries a signature that matches its content and the secret.

    False for a missing, malformed or wrong signature and for content that is not JSON data;
    :class:`SigningError` only for an empty secret (a setup mistake, not a forged file).
    """
    if not course_secret:
        raise SigningError("the course secret is empty; cannot verify signatures without it")
    if not isinstance(result_dict, Mapping):
        return False
    claimed = result_dict.get(SIGNATURE_FIELD)
    if not isinstance(claimed, str):
        return False
    try:
        expected = _digest(result_dict, course_secret)
    except SigningError:
        return False
    return hmac.compare_digest(claimed.encode("utf-8"), expected.encode("utf-8"))
