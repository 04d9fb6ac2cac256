"""Secrets: resolving references at run time and keeping their values out of every output.

:mod:`reconciler.secrets.resolver` turns ``spec.secrets`` references into values;
:mod:`reconciler.secrets.redaction` masks those values in logs, the journal and errors. The
runner (``reconciler.engine.runner``) is the only caller of both during a run.
"""

from __future__ import annotations

from reconciler.secrets.redaction import MASK, RedactingLogger, Redactor
from reconciler.secrets.resolver import (
    VAULT_NOT_CONFIGURED,
    DefaultResolver,
    SecretResolver,
    StaticResolver,
)

__all__ = [
    "MASK",
    "VAULT_NOT_CONFIGURED",
    "DefaultResolver",
    "RedactingLogger",
    "Redactor",
    "SecretResolver",
    "StaticResolver",
]
