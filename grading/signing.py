"""Tamper-evident results: an HMAC-SHA256 signature over the canonical JSON of a result.

An apprentice's result file travels (a USB stick, a learning platform upload);
:func:`sign_result` adds a ``signature`` field, :func:`verify_result` recomputes it: any
edit of any field (one point more, a check flipped to passed, a field added or removed)
makes verification fail.

Which key signs
    A signature only proves something if the apprentice cannot compute it. The course
    secret cannot be that key: apprentices hold it (``simlab course init --secret``) to
    draw and render their own variants, so a result signed with it can be forged by any of
    them. Give the grader a **signing key** of its own, never handed out
    (``signing_key=``; the CLI's ``--signing-key`` / ``$SIMLAB_SIGNING_KEY``): the HMAC
    key is then derived from it with the label :data:`SIGNING_LABEL`, so it stays
    independent of every other use of the same text (the variants' HMAC of the course
    secret, should an instructor reuse it), and the signature reads
    ``hmac-sha256-key:<hex>``. Without a signing key, the course secret signs as before
    (``hmac-sha256:<hex>``, the raw secret as HMAC key): files signed that way keep
    verifying, but they are only tamper-evident against people without the course secret.
    A verifier given a signing key accepts only signing-key signatures, so a
    course-secret signature cannot pass for a grader's.

The canonical JSON is ``json.dumps`` with sorted keys, no whitespace, UTF-8 and no NaN or
infinity. Verify the dictionary as read from the file, not a re-serialized object: ``3``
and ``3.0`` are different texts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Final, Literal

from grading.model import GradingError

__all__ = [
    "KEY_SIGNATURE_PREFIX",
    "SIGNATURE_FIELD",
    "SIGNATURE_PREFIX",
    "SIGNING_KEY_ENV",
    "SIGNING_LABEL",
    "SigningError",
    "canonical_json",
    "derive_key",
    "sign_result",
    "signed_with",
    "verify_result",
]

SIGNATURE_FIELD = "signature"
SIGNATURE_PREFIX = "hmac-sha256:"
"""Prefix of a signature made with the course secret (forgeable by whoever holds it)."""
KEY_SIGNATURE_PREFIX = "hmac-sha256-key:"
"""Prefix of a signature made with the grader's signing key."""
SIGNING_LABEL: Final = b"simlab-result-signature"
"""Label of the HMAC key derived from a signing key: ``HMAC(signing_key, label)``."""
SIGNING_KEY_ENV: Final = "SIMLAB_SIGNING_KEY"
"""Environment variable the CLI reads the grader's signing key from."""

SignedWith = Literal["course-secret", "signing-key"]


class SigningError(GradingError):
    """A result that cannot be signed: no key, or data that is not JSON."""


def canonical_json(data: Mapping[str, Any]) -> bytes:
    """The canonical bytes of ``data``: sorted keys, no whitespace, UTF-8, strict JSON."""
    try:
        text = json.dumps(
            data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as err:
        raise SigningError(f"the result is not plain JSON data: {err}") from None
    return text.encode("utf-8")


def derive_key(secret: str, label: bytes) -> bytes:
    """An HMAC key for one purpose: ``HMAC-SHA256(secret, label)``; keys derived from one
    secret with distinct labels are independent of each other."""
    return hmac.new(secret.encode("utf-8"), label, hashlib.sha256).digest()


def _key(course_secret: str | None, signing_key: str | None) -> tuple[str, bytes]:
    """(signature prefix, HMAC key): the signing key's derived key, else the course secret."""
    if signing_key is not None:
        if not signing_key:
            raise SigningError(
                f"the signing key is empty; give the grader's signing key (${SIGNING_KEY_ENV})"
            )
        return KEY_SIGNATURE_PREFIX, derive_key(signing_key, SIGNING_LABEL)
    if not course_secret:
        raise SigningError(
            "the course secret is empty; set the course's secret (or a signing key) before "
            "signing or verifying"
        )
    return SIGNATURE_PREFIX, course_secret.encode("utf-8")


def _digest(data: Mapping[str, Any], prefix: str, key: bytes) -> str:
    unsigned = {k: v for k, v in data.items() if k != SIGNATURE_FIELD}
    return prefix + hmac.new(key, canonical_json(unsigned), hashlib.sha256).hexdigest()


def sign_result(
    result_dict: Mapping[str, Any],
    course_secret: str | None = None,
    *,
    signing_key: str | None = None,
) -> dict[str, Any]:
    """A copy of ``result_dict`` with ``signature`` set (an existing one is replaced),
    signed with ``signing_key`` when given, else with ``course_secret``."""
    prefix, key = _key(course_secret, signing_key)
    signed = {k: v for k, v in result_dict.items() if k != SIGNATURE_FIELD}
    signed[SIGNATURE_FIELD] = _digest(signed, prefix, key)
    return signed


def verify_result(
    result_dict: Mapping[str, Any],
    course_secret: str | None = None,
    *,
    signing_key: str | None = None,
) -> bool:
    """True when ``result_dict`` carries a signature that matches its content and the key:
    with ``signing_key``, only a signing-key signature; else a course-secret one.

    False for a missing, malformed or wrong signature and for content that is not JSON data;
    :class:`SigningError` only for an empty key (a setup mistake, not a forged file).
    """
    if signing_key is None and not course_secret:
        raise SigningError("the course secret is empty; cannot verify signatures without it")
    prefix, key = _key(course_secret, signing_key)
    if not isinstance(result_dict, Mapping):
        return False
    claimed = result_dict.get(SIGNATURE_FIELD)
    if not isinstance(claimed, str) or not claimed.startswith(prefix):
        return False
    try:
        expected = _digest(result_dict, prefix, key)
    except SigningError:
        return False
    return hmac.compare_digest(claimed.encode("utf-8"), expected.encode("utf-8"))


def signed_with(result_dict: Mapping[str, Any]) -> SignedWith | None:
    """Which kind of key a result's signature claims (not checked): ``"signing-key"``,
    ``"course-secret"``, or None when it has no signature of either form. Lets a verifier
    say "signed with the course secret: give --signing-key" instead of "edited"."""
    claimed = result_dict.get(SIGNATURE_FIELD) if isinstance(result_dict, Mapping) else None
    if not isinstance(claimed, str):
        return None
    if claimed.startswith(KEY_SIGNATURE_PREFIX):
        return "signing-key"
    if claimed.startswith(SIGNATURE_PREFIX):
        return "course-secret"
    return None
