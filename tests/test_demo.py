"""The demo data, the labelme converter, and the demo pipeline end to end on a tiny model that really learns.

The demo data come from the labelme 6.3.1 sdist (downloaded once into ``$MMSWIN_CACHE``, ~14 MB, by
``tools/prepare_demo_data.py``). Bars of the learning tests (only working training reaches them; an untrained model
scores near 0 on both):

* segmenter (tiny Swin + slim UperNet, 192x144, 200 iterations): mIoU > 75 on the training photos (measured 80.7:
  6 of the 7 classes present at IoU 88-98, the bottle -- 7x21 pixels at this scale -- not learned) and the training
  loss falls at least 10x from its first logged value (measured 4.20 -> 0.17). Background everywhere scores ~8.
* detector (tiny Swin + slim Mask R-CNN, 320x240, 100 iterations): box AP > 0.5 on the training photos (measured
  0.870; mask AP 0.715) and the training loss falls at least 3x (measured 4.82 -> 0.62).
"""
from __future__ import annotations

import http.server
import json
import socket
import threading
import time
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
import mmswin.datasets.demo_data as prepare_demo_data  # noqa: E402  (tools/prepare_demo_data.py's library)
import mmswin.datasets.labelme as labelme  # noqa: E402  (tools/dataset_converters/labelme2mmswin.py's library)
from helpers import load_tool  # noqa: E402

labelme2mmswin = load_tool('dataset_converters/labelme2mmswin.py')
run_demo = load_tool('run_demo.py')

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
               'diningtable', 'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa', 'train',
               'tv/monitor')


@pytest.fixture(scope='module')
def demo_data() -> dict[str, Path]:
    """<repo>/data/demo_ade and demo_coco (the demo configs' data roots); prepared once, cached."""
    return prepare_demo_data.prepare(REPO / 'data', log=lambda *_: None)


# ---------------------------------------------------------------------------------------------- demo data


def test_prepare_is_idempotent(demo_data):
    stamps = {k: (p / prepare_demo_data.STAMP).stat().st_mtime_ns for k, p in demo_data.items()}
    messages = []
    again = prepare_demo_data.prepare(REPO / 'data', log=messages.append)
    assert again == demo_data
    assert {k: (p / prepare_demo_data.STAMP).stat().st_mtime_ns for k, p in again.items()} == stamps
    assert messages == [f'demo data ready: {demo_data["seg"]} and {demo_data["coco"]}']


def test_demo_ade_layout(demo_data):
    root = demo_data['seg']
    assert json.loads((root / 'meta.json').read_text())['classes'] == list(VOC_CLASSES)
    for split in ('training', 'validation'):
        images = sorted(p.stem for p in (root / 'images' / split).glob('*.jpg'))
        assert images == ['2011_000003', '2011_000006', '2011_000025']
        for stem in images:
            label = np.array(Image.open(root / 'annotations' / split / f'{stem}.png'))
            assert label.shape == Image.open(root / 'images' / split / f'{stem}.jpg').size[::-1]
            assert set(np.unique(label)) <= set(range(len(VOC_CLASSES) + 1))  # 0 = ignore, k + 1 = class k
    person = VOC_CLASSES.index('person') + 1
    assert (np.array(Image.open(root / 'annotations/training/2011_000003.png')) == person).sum() > 10000


def test_demo_coco_ids_start_at_one(demo_data):
    from pycocotools.coco import COCO
    data = json.loads((demo_data['coco'] / 'annotations/instances_val2017.json').read_text())
    assert min(im['id'] for im in data['images']) == 1
    assert min(a['id'] for a in data['annotations']) == 1
    assert [c['name'] for c in data['categories']] == list(VOC_CLASSES[1:])  # no _background_
    assert len(data['annotations']) == 12
    names = {c['id']: c['name'] for c in data['categories']}
    assert {names[a['category_id']] for a in data['annotations']} == {'person', 'bus', 'car', 'bottle', 'chair',
                                                                      'sofa'}
    coco = COCO(str(demo_data['coco'] / 'annotations/instances_val2017.json'))
    for im in coco.dataset['images']:
        assert (demo_data['coco'] / 'val2017' / im['file_name']).is_file()


def test_labelme_json_route_matches_labelme_exports(demo_data, tmp_path):
    """Rasterising labelme's own annotation files gives labelme's own VOC / COCO exports."""
    archive = prepare_demo_data.cache_dir() / prepare_demo_data.SDIST_NAME
    prefix = f'labelme-{prepare_demo_data.LABELME_VERSION}/examples/'
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(prefix) and 'data_annotated/' in m.name
                   or m.name.endswith('/labels.txt') and m.name.startswith(prefix)]
        tar.extractall(tmp_path, members=members, filter='data')
    examples = tmp_path / prefix
    labelme.convert(examples / 'semantic_segmentation/data_annotated', seg_out=tmp_path / 'ade',
                    labels=examples / 'semantic_segmentation/labels.txt', val_equals_train=True)
    for png in sorted((demo_data['seg'] / 'annotations/training').glob('*.png')):
        ours = np.array(Image.open(tmp_path / 'ade/annotations/training' / png.name))
        theirs = np.array(Image.open(png))
        assert (ours != theirs).mean() < 1e-3, png.name  # PIL versions may differ on a few edge pixels

    labelme.convert(examples / 'instance_segmentation/data_annotated', coco_out=tmp_path / 'coco',
                    labels=examples / 'instance_segmentation/labels.txt', val_equals_train=True)
    ours = json.loads((tmp_path / 'coco/annotations/instances_train2017.json').read_text())
    theirs = json.loads((demo_data['coco'] / 'annotations/instances_train2017.json').read_text())
    by_file = {im['id']: im['file_name'] for im in theirs['images']}
    ours_by_file = {im['id']: im['file_name'] for im in ours['images']}
    key = lambda a, files: (files[a['image_id']], a['category_id'], tuple(a['bbox']), a['area'])  # noqa: E731
    assert sorted(key(a, ours_by_file) for a in ours['annotations']) == \
        sorted(key(a, by_file) for a in theirs['annotations'])


# ---------------------------------------------------------------------------------------- converter, synthetic


def _write_labelme(folder: Path, stem: str, shapes: list, embed: bool = False) -> None:
    import base64
    import io
    folder.mkdir(parents=True, exist_ok=True)
    img = Image.new('RGB', (64, 48), (90, 90, 90))
    data = None
    if embed:
        buf = io.BytesIO()
        img.save(buf, format='PNG')
        data = base64.b64encode(buf.getvalue()).decode()
    else:
        img.save(folder / f'{stem}.jpg')
    (folder / f'{stem}.json').write_text(json.dumps({
        'version': '5.4.1', 'flags': {}, 'shapes': shapes, 'imagePath': f'{stem}.jpg', 'imageData': data,
        'imageHeight': 48, 'imageWidth': 64}))


def _shape(label, points, kind='polygon', group=None):
    return {'label': label, 'points': points, 'shape_type': kind, 'group_id': group, 'flags': {}}


def test_converter_shapes_groups_ignore_and_embedded_images(tmp_path):
    src = tmp_path / 'labelme'
    _write_labelme(src, 'a', [
        _shape('cat', [[2, 2], [20, 12]], 'rectangle'),
        _shape('dog', [[40, 24], [40, 34]], 'circle'),
        _shape('cat', [[30, 2], [38, 2], [38, 8], [30, 8]], group=1),  # two parts of one cat
        _shape('cat', [[50, 2], [58, 2], [58, 8], [50, 8]], group=1),
        _shape('__ignore__', [[0, 40], [63, 40], [63, 47], [0, 47]]),
        _shape('cat', [[0, 0], [10, 10]], 'line'),  # no area: skipped with a warning
    ])
    _write_labelme(src, 'b', [_shape('dog', [[5, 5], [25, 5], [25, 25], [5, 25]])], embed=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        classes = labelme.convert(src, seg_out=tmp_path / 'ade', coco_out=tmp_path / 'coco',
                                  val_images=['b'])
    assert any("skipped a 'line' shape" in str(w.message) for w in caught)
    assert classes == {'seg': ['background', 'cat', 'dog'], 'coco': ['cat', 'dog']}

    label = np.array(Image.open(tmp_path / 'ade/annotations/training/a.png'))
    assert label[5, 10] == 2 and label[29, 40] == 3 and label[30, 5] == 1  # cat, dog, background (+1)
    assert (label[41:, :] == 0).all()  # __ignore__ -> 0, read as 255 with reduce_zero_label=True
    assert (tmp_path / 'ade/images/validation/b.jpg').is_file()  # from the embedded imageData

    train = json.loads((tmp_path / 'coco/annotations/instances_train2017.json').read_text())
    assert [c['name'] for c in train['categories']] == ['cat', 'dog'] and train['categories'][0]['id'] == 1
    cats = [a for a in train['annotations'] if a['category_id'] == 1]
    assert len(cats) == 2, 'the rectangle and the 2-part group are two instances'
    grouped = next(a for a in cats if len(a['segmentation']) == 2)
    assert grouped['bbox'] == [30.0, 2.0, 29.0, 7.0]
    val = json.loads((tmp_path / 'coco/annotations/instances_val2017.json').read_text())
    assert [im['file_name'] for im in val['images']] == ['b.jpg'] and val['images'][0]['id'] == 1


def test_fix_coco_ids_shifts_and_drops_background():
    data = {'images': [{'id': 0, 'file_name': 'x.jpg', 'width': 4, 'height': 4}],
            'annotations': [{'id': 0, 'image_id': 0, 'category_id': 1, 'bbox': [0, 0, 1, 1]}],
            'categories': [{'id': 0, 'name': '_background_'}, {'id': 1, 'name': 'cat'}]}
    fixed = labelme.fix_coco_ids(data)
    assert fixed['images'][0]['id'] == 1 and fixed['annotations'][0]['id'] == 1
    assert fixed['annotations'][0]['image_id'] == 1 and fixed['annotations'][0]['category_id'] == 1
    assert fixed['categories'] == [{'id': 1, 'name': 'cat'}]
    assert data['images'][0]['id'] == 0, 'the input is not modified'


def test_converter_cli(tmp_path, capsys):
    src = tmp_path / 'labelme'
    for stem in ('a', 'b', 'c', 'd', 'e'):
        _write_labelme(src, stem, [_shape('cat', [[2, 2], [20, 12]], 'rectangle')])
    assert labelme2mmswin.main([str(src), '--seg-out', str(tmp_path / 'ade'), '--val-ratio', '0.2']) == 0
    assert 'seg: wrote' in capsys.readouterr().out
    assert sorted(p.stem for p in (tmp_path / 'ade/images/validation').glob('*.jpg')) == ['e']
    assert labelme2mmswin.main([str(src), '--seg-out', str(tmp_path / 'ade')]) == 1
    assert 'not empty; pass --overwrite' in capsys.readouterr().err


# ------------------------------------------------------------------------------------- end to end, learning


def _losses(log_dir: str) -> list[float]:
    scalars = Path(log_dir) / 'vis_data' / 'scalars.json'
    return [json.loads(line)['loss'] for line in scalars.read_text().splitlines() if '"loss"' in line]


def _run_demo(task: str, config: str, work_dir: Path, *extra: str) -> tuple[dict, str]:
    # mmengine names an experiment (and its Visualizer instance) by config and start time in whole seconds: a run
    # of the same config that ended in this very second, in this worker, would lend us its visualizer, and the
    # scalars would land in its log dir. Start in a fresh second.
    time.sleep(1.0 - time.time() % 1.0 + 0.01)
    lines = []
    result = run_demo.run(['--task', task, '--config', str(REPO / 'configs/demo' / config), '--work-dir',
                           str(work_dir), '--pretrained', 'none', *extra], log=lines.append)
    return result, '\n'.join(lines)


def _check_overlays(result: dict, printed: str) -> None:
    assert len(result['overlays']) == 3
    assert 'prediction overlays (3 PNG files, ground truth beside ' in printed
    assert f'{result["work_dir"]}/overlays' in printed
    assert 'weights: random initialisation (--pretrained none)' in printed
    for path in result['overlays']:
        assert path in printed
        with Image.open(path) as img:
            assert img.format == 'PNG' and img.width >= 500


@pytest.mark.slow
def test_segmenter_really_learns(demo_data, tmp_path):
    result, printed = _run_demo('seg', 'upernet_swin_tiny_overfit.py', tmp_path / 'seg')
    losses = _losses(result['log_dir'])
    print(f'segmenter: mIoU={result["metrics"]["mIoU"]} loss {losses[0]:.3f} -> {losses[-1]:.3f}')
    assert result['metrics']['mIoU'] > 75, result['metrics']
    assert losses[0] / losses[-1] >= 10, losses
    _check_overlays(result, printed)
    assert Path(result['checkpoint']).is_file()


@pytest.mark.slow
def test_detector_really_learns(demo_data, tmp_path):
    result, printed = _run_demo('det', 'mask_rcnn_swin_tiny_overfit.py', tmp_path / 'det')
    losses = _losses(result['log_dir'])
    metrics = result['metrics']
    print(f'detector: bbox AP={metrics["coco/bbox_mAP"]} segm AP={metrics["coco/segm_mAP"]} '
          f'loss {losses[0]:.3f} -> {losses[-1]:.3f}')
    assert metrics['coco/bbox_mAP'] > 0.5, metrics
    assert losses[0] / losses[-1] >= 3, losses
    _check_overlays(result, printed)


# ------------------------------------------------------------------------ ImageNet weights over the loopback address


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``files[path] = (body, announced length)``; a shorter body than announced is a truncated download."""
    files: dict[str, tuple[bytes, int]] = {}

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path not in self.files:
            self.send_error(404)
            return
        body, length = self.files[self.path]
        self.send_response(200)
        self.send_header('Content-Length', str(length))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback(tmp_path, monkeypatch):
    """An HTTP server on 127.0.0.1 (nothing beyond it is reached) and a fresh torch cache ($TORCH_HOME)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.files = {}
    yield f'http://127.0.0.1:{server.server_address[1]}', _Handler.files, tmp_path / 'torch_home/hub/checkpoints'
    server.shutdown()
    server.server_close()


def _official_tiny_swin(embed_dims: int = 32) -> bytes:
    """A timm Swin of the overfit config's arch (C=32, one block per stage) saved in the official release's layout
    (the merging at the end of stage i, ``head``, under ``model``)."""
    import io

    import timm
    import torch
    from helpers import randomize_
    ref = randomize_(timm.create_model('swin_tiny_patch4_window7_224', pretrained=False, embed_dim=embed_dims,
                                       depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8)), seed=5)
    official = {}
    for key, value in ref.state_dict().items():
        parts = key.replace('head.fc.', 'head.').split('.')
        if key.startswith('layers.') and parts[2] == 'downsample':
            parts[1] = str(int(parts[1]) - 1)
        official['.'.join(parts)] = value
    buffer = io.BytesIO()
    torch.save({'model': official}, buffer)
    return buffer.getvalue()


def _overfit_cfg():
    from mmengine.config import Config
    return Config.fromfile(str(REPO / 'configs/demo/upernet_swin_tiny_overfit.py'))


@pytest.mark.slow
def test_demo_downloads_imagenet_weights_once_and_fine_tunes_from_them(demo_data, loopback, tmp_path):
    url, files, cache = loopback
    body = _official_tiny_swin()
    files['/swin_tiny_patch4_window7_224.pth'] = (body, len(body))
    address = f'{url}/swin_tiny_patch4_window7_224.pth'
    result, printed = _run_demo('seg', 'upernet_swin_tiny_overfit.py', tmp_path / 'seg', '--pretrained', address,
                                '--cfg-options', 'train_cfg.max_iters=2', 'train_cfg.val_interval=2')
    cached = cache / 'swin_tiny_patch4_window7_224.pth'
    assert cached.read_bytes() == body and sorted(p.name for p in cache.iterdir()) == [cached.name]
    assert f'weights: ImageNet-1K Swin-T from {cached} (strict load checked), fine-tuning learning rate 6e-05' in \
        printed
    assert 'ImageNet init' in printed and len(result['overlays']) == 3
    files.clear()  # a second start reads the cache, not the server
    cfg = _overfit_cfg()
    assert run_demo.start_weights(cfg, address).startswith(f'weights: ImageNet-1K Swin-T from {cached}')
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(cached))


def _refused_url() -> str:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    return f'http://127.0.0.1:{port}/swin_tiny_patch4_window7_224.pth'


@pytest.mark.parametrize('failure', ['refused', 'truncated', 'not a checkpoint', 'another arch'])
def test_demo_falls_back_to_random_weights_and_leaves_the_cache_clean(loopback, monkeypatch, failure):
    import mmswin.apis
    url, files, cache = loopback
    body = _official_tiny_swin()
    served = {'truncated': (body[:len(body) // 2], len(body)), 'not a checkpoint': (b'<html>proxy</html>', 18),
              'another arch': (_official_tiny_swin(embed_dims=48), None)}.get(failure)
    address = _refused_url() if failure == 'refused' else f'{url}/swin_tiny_patch4_window7_224.pth'
    if served is not None:
        files['/swin_tiny_patch4_window7_224.pth'] = (served[0], served[1] or len(served[0]))
    monkeypatch.setitem(mmswin.apis.PRETRAINED_SOURCES, 'swin_tiny_patch4_window7_224.pth', address)
    monkeypatch.setattr(run_demo, 'REPO_ROOT', Path('/nonexistent'))  # no local checkpoints/ file either
    cfg = _overfit_cfg()
    line = run_demo.start_weights(cfg, 'auto')
    assert line.startswith('weights: RANDOM INITIALISATION - the ImageNet Swin-T weights could not be had (')
    reason = {'refused': 'could not download', 'truncated': 'ended after',
              'not a checkpoint': 'not a readable torch checkpoint', 'another arch': 'embed_dims 48'}[failure]
    assert reason in line, line
    assert cfg.model.backbone.init_cfg is None
    leftovers = [p.name for p in cache.iterdir()] if cache.is_dir() else []
    assert leftovers == ([] if failure != 'another arch' else ['swin_tiny_patch4_window7_224.pth'])
    # asked for explicitly, the same failure stops the demo with its reason
    with pytest.raises(Exception, match=reason):
        run_demo.start_weights(_overfit_cfg(), address if failure != 'another arch' else str(cache / leftovers[0]))
