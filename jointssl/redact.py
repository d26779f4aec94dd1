"""One redaction for what jointssl writes out: config params logged to MLflow (via
:func:`jointssl.config.load.flatten`) and job summaries (``index``'s summary.json).

:func:`redact` replaces, in any text: the password of a URL's user info (``postgresql://u:PW@host`` ->
``postgresql://u:***@host``), the values of credential-looking query parameters (``sig``, ``token``,
``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token``, ``password``, ...), and any value of
this process's environment variables whose names say they hold a secret (``*SECRET*``, ``*TOKEN*``,
``*PASSWORD*``, ``*ACCESS_KEY*``, ``*_DSN``, ``DATABASE_URL``, ...), read when it is called.
"""

from __future__ import annotations

import os
import re
from typing import Any

MASK = "***"
SECRET_ENV_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|ACCESS_KEY|API_KEY|_DSN$|^DATABASE_URL$",
                             re.IGNORECASE)
MIN_SECRET_LENGTH = 6
"""Shorter environment values are not masked (they would mask ordinary words)."""
_USERINFO = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/?#@\s]*):(?P<secret>[^@/?#\s]*)@")
_QUERY = re.compile(r"(?P<head>[?&](?:sig|signature|token|access_token|password|passwd|secret|key|"
                    r"x-amz-signature|x-amz-credential|x-amz-security-token)=)(?P<secret>[^&#\s'\"]+)",
                    re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with URL passwords, signed-URL parameters and secret environment values masked."""
    text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in sorted(secret_values(), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def redact_tree(value: Any) -> Any:
    """:func:`redact` over every string of plain data (dicts, lists, scalars), keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_tree(k): redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    return value


def secret_values() -> set[str]:
    """Values of this process's environment variables named like secrets (and the passwords in them)."""
    values = set()
    for name, value in os.environ.items():
        if SECRET_ENV_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH:
            values.add(value)
            match = _USERINFO.search(value)
            if match and len(match["secret"]) >= MIN_SECRET_LENGTH:
                values.add(match["secret"])
    return values
