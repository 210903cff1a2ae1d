"""The demo data sets ``<data_root>/demo_ade`` (ADE20K layout) and ``<data_root>/demo_coco`` (COCO layout).

Source: the labelme 6.3.1 source distribution on PyPI, which carries three PASCAL VOC 2011 photos annotated with
labelme (``examples/semantic_segmentation/data_dataset_voc``: VOC palette label PNGs, 21 classes, 255 = ignore;
``examples/instance_segmentation/data_dataset_coco``: 12 polygon instances). It is fetched with
``pip download --no-deps --no-binary :all: labelme==6.3.1`` into a cache (``$MMSWIN_CACHE``, default
``~/.cache/mmswin``), checked against its sha256 and converted with :mod:`mmswin.datasets.labelme`.
labelme is GPL-3.0 and the photos come from Flickr through PASCAL VOC: they are downloaded here, never committed.

The three photos form both the training and the validation split: the demo shows that training works end to end,
its numbers measure fit to those photos, not generalisation.

Idempotent: a finished data set carries a stamp file and is left alone; an interrupted run leaves no partial data
set behind (each is built in a temporary folder and renamed into place); concurrent calls on one ``data_root``
(two demos, parallel test workers) take turns through a lock file there. The command line is
``tools/prepare_demo_data.py``.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .labelme import convert

LABELME_VERSION = '6.3.1'
SDIST_NAME = f'labelme-{LABELME_VERSION}.tar.gz'
SDIST_SHA256 = '2947e0d8341a92faa7b3ee50cf4b672f838051c6bf24892526e95b64fd3a707e'
MEMBERS = {
    'seg': f'labelme-{LABELME_VERSION}/examples/semantic_segmentation/data_dataset_voc',
    'coco': f'labelme-{LABELME_VERSION}/examples/instance_segmentation/data_dataset_coco',
}
OUTPUTS = {'seg': 'demo_ade', 'coco': 'demo_coco'}
STAMP = '.mmswin_demo_data.json'
STAMP_CONTENT = {'source': SDIST_NAME, 'sha256': SDIST_SHA256, 'layout_version': 1}
SOURCE_NOTE = (f'Converted by mmswin (mmswin.datasets.demo_data) from the labelme {LABELME_VERSION} source '
               'distribution (PyPI, GPL-3.0). The photos are PASCAL VOC 2011 images originally from Flickr. '
               'Do not commit or redistribute.\n')


class PrepareError(RuntimeError):
    """The demo data could not be fetched or converted; the message says why and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get('MMSWIN_CACHE', Path.home() / '.cache' / 'mmswin'))


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(cache: Path, log=print) -> Path:
    """The verified labelme sdist, downloaded with pip into ``cache`` unless already there."""
    target = cache / SDIST_NAME
    if target.is_file() and sha256(target) == SDIST_SHA256:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    log(f'downloading {SDIST_NAME} from PyPI (about 14 MB) into {cache}')
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        cmd = [sys.executable, '-m', 'pip', 'download', '--no-deps', '--no-binary', ':all:',
               f'labelme=={LABELME_VERSION}', '-d', tmp, '--disable-pip-version-check', '-q']
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / SDIST_NAME
        if proc.returncode != 0 or not got.is_file():
            raise PrepareError(f'could not download labelme {LABELME_VERSION} with `{" ".join(cmd)}` '
                               f'(exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}\nDownload {SDIST_NAME} '
                               f'by other means and put it into {cache} (or pass --sdist PATH).')
        digest = sha256(got)
        if digest != SDIST_SHA256:
            raise PrepareError(f'{SDIST_NAME} from PyPI has sha256 {digest}, expected {SDIST_SHA256}; refusing it')
        os.replace(got, target)
    return target


def _done(out: Path) -> bool:
    stamp = out / STAMP
    try:
        return json.loads(stamp.read_text()) == STAMP_CONTENT
    except (OSError, ValueError):
        return False


def prepare(data_root: str | Path, sdist: str | Path | None = None, force: bool = False,
            log=print) -> dict[str, Path]:
    """Make ``data_root/demo_ade`` and ``data_root/demo_coco``; returns their paths. Cheap when already done."""
    data_root = Path(data_root)
    data_root.mkdir(parents=True, exist_ok=True)
    with open(data_root / '.mmswin_demo_data.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the process dies
        return _prepare(data_root, sdist, force, log)


def _prepare(data_root: Path, sdist: str | Path | None, force: bool, log) -> dict[str, Path]:
    outs = {kind: data_root / name for kind, name in OUTPUTS.items()}
    todo = [kind for kind, out in outs.items() if force or not _done(out)]
    if not todo:
        log(f'demo data ready: {outs["seg"]} and {outs["coco"]}')
        return outs
    archive = Path(sdist) if sdist else fetch_sdist(cache_dir(), log)
    if sdist and sha256(archive) != SDIST_SHA256:
        raise PrepareError(f'{archive} is not the labelme {LABELME_VERSION} sdist (sha256 mismatch)')
    with tempfile.TemporaryDirectory(dir=data_root, prefix='.demo_tmp_') as tmp:
        tmp = Path(tmp)
        with tarfile.open(archive) as tar:
            wanted = [m for m in tar.getmembers()
                      if any(m.name.startswith(MEMBERS[k] + '/') for k in todo) and (m.isfile() or m.isdir())]
            tar.extractall(tmp / 'src', members=wanted, filter='data')
        for kind in todo:
            staged = tmp / OUTPUTS[kind]
            convert(tmp / 'src' / MEMBERS[kind], val_equals_train=True,
                    **{'seg_out' if kind == 'seg' else 'coco_out': staged})
            (staged / 'SOURCE.txt').write_text(SOURCE_NOTE)
            (staged / STAMP).write_text(json.dumps(STAMP_CONTENT))
            if outs[kind].exists():
                shutil.rmtree(outs[kind])
            os.replace(staged, outs[kind])
            log(f'wrote {outs[kind]}')
    return outs
