"""Credentials given as files: the ``<name>_file`` settings beside ``<name>``.

A leaf module (it imports nothing of ``reconciler``). Called by the model validators of
``DaemonSettings`` (``reconciler/daemon/settings.py``: the API token, the webhook secret) and
``VaultConfig`` (``reconciler/secrets/vault.py``: token, AppRole IDs), so both read such files
the same way and fail with the same message.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, SecretStr


def fill_from_files(
    model: BaseModel, names: Iterable[str], *, plain: frozenset[str] = frozenset()
) -> None:
    """Set each unset field ``name`` of ``model`` from the file its ``<name>_file`` names.

    A value given directly wins over the file. The file's text is stripped and stored as a
    :class:`SecretStr`, or as a plain ``str`` for the names in ``plain`` (identifiers, not
    secrets). Raises :class:`ValueError` naming the setting and the path (never the content)
    when the file cannot be read, which pydantic reports as a validation error.
    """
    for name in names:
        file: Path | None = getattr(model, f"{name}_file")
        if file is None or getattr(model, name) is not None:
            continue
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read {name}_file {str(file)!r}: {exc.strerror}") from None
        object.__setattr__(model, name, text if name in plain else SecretStr(text))
