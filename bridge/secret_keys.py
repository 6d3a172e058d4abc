"""Configured secrets as the HMAC keys their senders derive from them.

A sender may not sign with the secret exactly as an operator pasted it: Standard Webhooks
and Svix base64-decode it, WooCommerce decodes HTML entities in it. Each function returns
every key a delivery may be signed with, the sender's own reading first (that one signs).
"""

from __future__ import annotations

import base64
import binascii
import re

_STANDARD_PREFIX = "whsec_"

# The entities WordPress's wp_specialchars_decode($text, ENT_QUOTES) turns back into
# characters, with the zero-padded decimal and hexadecimal spellings it also accepts.
_WP_ENTITY = re.compile(r"&(?:amp|lt|gt|quot|#0*(?:38|60|62|34|39)|#[xX]0*(?:26|22|27));", re.ASCII)
_WP_NAMED = {"amp": "&", "lt": "<", "gt": ">", "quot": '"'}


def standard_keys(secret: str) -> tuple[bytes, ...]:
    """Keys for a Standard Webhooks (or Svix) secret.

    The reference library strips `whsec_`, pads and base64-decodes what is left (skipping
    characters outside the alphabet). A bare secret was once used as raw text here, so it
    also stands for itself; a secret that does not decode is only raw text.
    """
    encoded = secret.removeprefix(_STANDARD_PREFIX)
    try:
        decoded = base64.b64decode(encoded + "==")  # extra padding is ignored, as there
    except binascii.Error:
        decoded = b""
    raw = secret.encode()
    if not decoded:
        return (raw,)
    if secret.startswith(_STANDARD_PREFIX):
        return (decoded,)
    return (decoded, raw)


def woocommerce_keys(secret: str) -> tuple[bytes, ...]:
    """Keys for a WooCommerce secret: as configured, and entity-decoded as WooCommerce signs.

    WooCommerce may store and display a secret entity-encoded (`a&amp;b`) yet signs with
    `wp_specialchars_decode($secret, ENT_QUOTES)`; the decoded form comes first.
    """
    decoded = wp_specialchars_decode(secret)
    if decoded == secret:
        return (secret.encode(),)
    return (decoded.encode(), secret.encode())


def wp_specialchars_decode(text: str) -> str:
    """One pass of WordPress's decoding: `&amp;lt;` becomes `&lt;`, not `<`."""
    return _WP_ENTITY.sub(_wp_character, text)


def _wp_character(match: re.Match[str]) -> str:
    name = match.group()[1:-1]
    if name in _WP_NAMED:
        return _WP_NAMED[name]
    digits = name.lstrip("#")
    return chr(int(digits[1:], 16) if digits[0] in "xX" else int(digits))
