"""Sources of workflow files: git remotes, local git repositories and plain directories.

Where revisions come from. Callers (the daemon's controller, which hands each revision to
:mod:`reconciler.daemon.revision`, and the CLI's one-shot commands) use :func:`open_source` and the
:class:`Source` protocol only:

    source = open_source(settings.repo, branch=settings.branch, path=settings.path,
                         data_dir=settings.data_dir, poll_interval=settings.poll_interval)
    await source.run(on_revision, stop=stop)    # daemon: each new Revision, until stop is set
    revision = await source.fetch()             # one-shot: the current revision (FetchFailed)
    source.refresh()                            # webhook: fetch now

A :class:`Revision` holds raw bytes; ``reconciler/config``'s loader parses them.

Importing this package imports nothing heavy: each name below is loaded from its module on
first use (gitpython only with the git sources).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.sources.base import (
        BaseSource,
        OnRevision,
        Revision,
        Source,
        is_workflow_file,
    )
    from reconciler.sources.directory import DirectorySource
    from reconciler.sources.git import LocalGitSource, RemoteGitSource, is_remote_url
    from reconciler.sources.opening import normalize_subpath, open_source
    from reconciler.sources.signatures import SignaturePolicy
    from reconciler.urls import mask_url

_HOMES = {
    "BaseSource": "reconciler.sources.base",
    "OnRevision": "reconciler.sources.base",
    "Revision": "reconciler.sources.base",
    "Source": "reconciler.sources.base",
    "is_workflow_file": "reconciler.sources.base",
    "DirectorySource": "reconciler.sources.directory",
    "LocalGitSource": "reconciler.sources.git",
    "RemoteGitSource": "reconciler.sources.git",
    "is_remote_url": "reconciler.sources.git",
    "normalize_subpath": "reconciler.sources.opening",
    "open_source": "reconciler.sources.opening",
    "SignaturePolicy": "reconciler.sources.signatures",
    "mask_url": "reconciler.urls",
}
"""Where each public name lives."""

__all__ = [
    "BaseSource",
    "DirectorySource",
    "LocalGitSource",
    "OnRevision",
    "RemoteGitSource",
    "Revision",
    "SignaturePolicy",
    "Source",
    "is_remote_url",
    "is_workflow_file",
    "mask_url",
    "normalize_subpath",
    "open_source",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
