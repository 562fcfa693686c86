"""Secrets the server must read back (EC2 secret keys, which SigV4 needs), encrypted at rest.

Fernet (``cryptography``) with the keys of ``ADMINVMS_EC2_SECRET_KEYS``, comma-separated: the
first encrypts, every one decrypts, so a key is rotated by putting a new one first and running
``manage.py ec2_credentials rotate``. Without that setting one key is derived from the
Django ``SECRET_KEY`` (HKDF-SHA256), which suits the embedded default.
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

__all__ = ["InvalidToken", "decrypt", "encrypt", "generate_key", "reencrypt"]


def generate_key() -> str:
    """A new key for ``ADMINVMS_EC2_SECRET_KEYS``."""
    return Fernet.generate_key().decode()


def _derived_key(secret_key: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"adminvms-ec2-secrets", info=b"fernet")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    if not keys:
        return MultiFernet([Fernet(_derived_key(secret_key))])
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "ADMINVMS_EC2_SECRET_KEYS must hold Fernet keys (32 url-safe base64-encoded bytes), comma-separated; "
            "make one with `manage.py ec2_credentials new-key`."
        ) from exc


def _current() -> MultiFernet:
    return _fernet(tuple(settings.ADMINVMS["EC2_SECRET_KEYS"]), settings.SECRET_KEY)


def encrypt(plain: str) -> str:
    return _current().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    """The plain text; ``InvalidToken`` when no configured key opens it."""
    return _current().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str:
    """The same secret under the first key (``InvalidToken`` when no configured key opens it)."""
    return _current().rotate(token.encode()).decode()
