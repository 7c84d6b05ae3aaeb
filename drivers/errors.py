"""The words for an OS-level failure (errno, resolver, TLS, termios) as a technician should read them."""

from __future__ import annotations

import os
import ssl
import termios


def os_reason(exc: BaseException) -> str:
    """``No such file or directory``, ``Connection refused``, ``timed out``... for any low-level error.

    The errno wins because pyserial's messages wrap it in its own sentence ("could not open port
    ...: [Errno 2] ..."); resolver errors carry a negative EAI code, so their own text is used.
    """
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ssl.SSLError):
        # Its errno is an OpenSSL code, which os.strerror would misread as an errno.
        return f"TLS: {getattr(exc, 'reason', None) or exc}"
    code = exc.args[0] if isinstance(exc, termios.error) and exc.args else getattr(exc, "errno", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    text = getattr(exc, "strerror", None)
    if isinstance(text, str) and text:
        return text
    return str(exc) or type(exc).__name__
