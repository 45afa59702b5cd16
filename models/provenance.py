"""Which weights made a result: the line ``analyze`` writes beside the maps it computed."""

from __future__ import annotations

import hashlib

DIGEST_CHARS = 16
"""Hex characters of the SHA-256 kept: enough to tell weights files apart."""


def weights_provenance(name: str, data: bytes, command: str | None) -> str:
    """``"maps_1dcnn_plus.pt sha256:0123abcd… (dwellwise train maps --arch 1dcnn+ …)"``: the
    weights file's ``name``, the start of the SHA-256 of its bytes ``data`` (as read once for
    loading) and the command that trained it, when known."""
    digest = hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]
    made_by = f" ({command})" if command else ""
    return f"{name} sha256:{digest}{made_by}"
