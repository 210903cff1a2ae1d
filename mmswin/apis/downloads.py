"""Pretrained checkpoints fetched once over HTTP(S) into torch's cache, whole or not at all.

:func:`download_checkpoint` writes into ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``, by
default ``~/.cache/torch/hub/checkpoints``: where ``torch.hub`` and mmengine's ``load_checkpoint`` keep downloaded
weights). The body goes to a temporary file beside the target, is checked (every byte the server announced, and a
readable torch checkpoint), and only then renamed into place: a refused connection, a proxy error, a truncated body
or a file that is not a checkpoint raise :class:`DownloadError` and leave nothing in the cache.
"""
from __future__ import annotations

import contextlib
import os
import os.path as osp
import sys
import urllib.error
import urllib.parse
import urllib.request
from types import SimpleNamespace
from typing import Any

from mmswin.apis.errors import ToolError

__all__ = ['DownloadError', 'checkpoint_cache_dir', 'download_checkpoint']

_CHUNK = 1 << 16


class DownloadError(ToolError):
    """A checkpoint could not be downloaded whole; nothing was left in the cache."""


def checkpoint_cache_dir() -> str:
    """torch's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (``torch.hub.get_dir()`` honours the variables)."""
    import torch
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _progress(total: int | None, name: str) -> Any:
    """A progress bar on stderr (``update(n)``, ``close()``): tqdm when installed, else one that shows nothing."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with the stack
        return contextlib.nullcontext(SimpleNamespace(update=lambda n: None))
    return tqdm(total=total, unit='B', unit_scale=True, unit_divisor=1024, desc=name, file=sys.stderr,
                disable=not sys.stderr.isatty())


def download_checkpoint(url: str, cache_dir: str | None = None, timeout: float = 30.0) -> str:
    """The local path of the checkpoint at ``url``, downloading it into the cache on first use.

    Args:
        url: an ``http(s)://`` (or ``file://``) address; the file name is its last path component.
        cache_dir: default :func:`checkpoint_cache_dir`.
        timeout: seconds to wait for the connection and for each read.

    Raises:
        DownloadError: the server could not be reached or refused, the body ended early, or the file is not a
            readable torch checkpoint -- naming the address and the reason.
    """
    name = osp.basename(urllib.parse.urlparse(url).path)
    if not name:
        raise DownloadError(f'{url}: the address names no file')
    cache_dir = cache_dir or checkpoint_cache_dir()
    target = osp.join(cache_dir, name)
    if osp.isfile(target):
        return target
    os.makedirs(cache_dir, exist_ok=True)
    partial = osp.join(cache_dir, f'.{name}.part-{os.getpid()}')
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, 'wb') as out:
                length = response.headers.get('Content-Length')
                expected = int(length) if length and length.isdigit() else None
                received = 0
                with _progress(expected, name) as bar:
                    while chunk := response.read(_CHUNK):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except (urllib.error.URLError, OSError, ValueError) as err:
            reason = getattr(err, 'reason', None) or err
            raise DownloadError(f'could not download {url}: {reason}') from err
        if expected is not None and received != expected:
            raise DownloadError(f'could not download {url}: the body ended after {received} of {expected} bytes')
        from mmswin.models.pretrained import read_state_dict
        try:
            read_state_dict(partial)
        except Exception as err:  # any unreadable file is the same failure here
            raise DownloadError(f'{url} is not a readable torch checkpoint: {err}') from err
        os.replace(partial, target)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return target
