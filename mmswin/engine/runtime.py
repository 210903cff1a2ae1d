"""The one place where mmswin changes how torch and mmengine behave in this process: :func:`setup_runtime`.

Importing :mod:`mmswin.models` registers models and changes nothing else. :func:`setup_runtime` is called by
``import mmswin.engine`` (the ``custom_imports`` entry of every mmswin config) and at the start of every tool in
``tools/``; a program that builds mmswin models itself may call it too. It is idempotent.
"""
from __future__ import annotations

import importlib.util
import os
import os.path as osp
import warnings
from typing import Any

__all__ = ['setup_runtime']

_done = False


def setup_runtime() -> None:
    """Install, once per process:

    1. **Safe resume under torch >= 2.6** -- torch's weights-only unpickler allow-lists the few classes mmengine's
       own checkpoints hold (``torch.serialization.add_safe_globals``), and mmengine's local checkpoint loader
       (``Runner`` resume, ``load_checkpoint``, ``load_from``) goes through
       :func:`~mmswin.utils.checkpoint_io.safe_torch_load`, which refuses a file whose unpickling would run code
       with a clear :class:`~mmswin.utils.checkpoint_io.UnsafeCheckpointError` (mmengine 0.10.7 calls
       ``torch.load`` without ``weights_only``: its own checkpoints fail to load otherwise).
    2. **The atomic storage backend** ``'mmswin_atomic_local'`` in ``mmengine.fileio``
       (:class:`~mmswin.engine.storage.AtomicLocalBackend`), used by ``AtomicCheckpointHook``.
    3. **``mmdet::`` / ``mmseg::`` config bases without ``pkg_resources``** -- only when ``pkg_resources`` is not
       installed (setuptools >= 81), mmengine's config loader finds other packages' configs through
       ``importlib.metadata`` instead.
    4. mmengine's ``pkg_resources is deprecated`` warning, printed on every such lookup, is silenced.
    """
    global _done
    if _done:
        return
    import torch
    from mmengine.fileio.backends import register_backend
    from mmengine.runner.checkpoint import CheckpointLoader

    from mmswin.engine.storage import ATOMIC_BACKEND, AtomicLocalBackend
    from mmswin.utils.checkpoint_io import mmengine_safe_globals, safe_torch_load

    torch.serialization.add_safe_globals(mmengine_safe_globals())

    @CheckpointLoader.register_scheme(prefixes='', force=True)
    def _load_from_local(filename: str, map_location: Any) -> Any:
        return safe_torch_load(os.path.expanduser(filename), map_location=map_location)  # missing: not found

    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    _external_config_lookup_without_pkg_resources()
    warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
    _done = True


def _external_config_lookup_without_pkg_resources() -> bool:
    """Point mmengine's config loader at ``importlib.metadata`` when ``pkg_resources`` is missing.

    mmengine 0.10.7 (its last release) finds the configs of other packages with ``pkg_resources``, which
    setuptools >= 81 no longer ships: every config inheriting a stock mmdet / mmseg base then fails with
    ``ModuleNotFoundError: No module named 'pkg_resources'``. Returns whether the replacement is in place.
    """
    if importlib.util.find_spec('pkg_resources') is not None:
        return False
    import importlib.metadata as metadata

    import mmengine.config.config as config_module

    def is_installed(package: str) -> bool:
        try:
            metadata.distribution(package)
            return True
        except metadata.PackageNotFoundError:
            spec = importlib.util.find_spec(package)
            return spec is not None and spec.origin is not None

    def get_installed_path(package: str) -> str:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            spec = importlib.util.find_spec(package)
            if spec is None or spec.origin is None:
                raise
            return osp.dirname(spec.origin)
        location = str(dist.locate_file(''))
        if osp.exists(osp.join(location, package)):
            return osp.join(location, package)
        top_level = (dist.read_text('top_level.txt') or package).split()
        return osp.join(location, top_level[0] if top_level else package)

    config_module.is_installed = is_installed
    config_module.get_installed_path = get_installed_path
    return True
