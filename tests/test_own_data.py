"""The README's own-data path, end to end: labelme files -> converter -> configs/own_data/* -> a few iterations."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import mmswin.datasets.labelme as labelme
from mmswin.apis.errors import run_tool
from helpers import load_tool

REPO = Path(__file__).resolve().parents[1]
train_tool = load_tool('train.py')
CLASSES = ['background', 'crack', 'rust']  # the user's labels.txt (background first, as labelme's examples)

# a few iterations at the configs' own sizes, no ImageNet file (none can be downloaded here), no worker processes
SHORT = ['model.backbone.init_cfg=None', 'default_hooks.logger.interval=1']
for split in ('train', 'val', 'test'):
    SHORT += [f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False']


def _labelme_folder(folder: Path) -> None:
    """Four 64x48 photos with a 'crack' polygon and a 'rust' rectangle each, as labelme saves them."""
    folder.mkdir(parents=True)
    for i in range(4):
        img = Image.new('RGB', (64, 48), (120 + 20 * i, 110, 100))
        ImageDraw.Draw(img).polygon([(4, 4), (30, 6), (28, 30), (6, 26)], fill=(40, 40, 40))
        img.save(folder / f'p{i}.jpg')
        shapes = [{'label': 'crack', 'points': [[4, 4], [30, 6], [28, 30], [6, 26]], 'shape_type': 'polygon'},
                  {'label': 'rust', 'points': [[36, 10], [60, 40]], 'shape_type': 'rectangle'}]
        for shape in shapes:
            shape.update(group_id=None, flags={})
        (folder / f'p{i}.json').write_text(json.dumps({
            'version': '5.4.1', 'flags': {}, 'shapes': shapes, 'imagePath': f'p{i}.jpg', 'imageData': None,
            'imageHeight': 48, 'imageWidth': 64}))


@pytest.fixture(scope='module')
def converted(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp('own')
    _labelme_folder(root / 'labelme')
    (root / 'labels.txt').write_text('\n'.join(['__ignore__', '_background_', 'crack', 'rust']) + '\n')
    classes = labelme.convert(root / 'labelme', labels=root / 'labels.txt', seg_out=root / 'my_ade',
                              coco_out=root / 'my_coco', val_images=['p3'])
    assert classes['seg'] == CLASSES
    return {'seg': root / 'my_ade', 'det': root / 'my_coco'}


def _train(config: str, data: Path, work: Path, options: list[str], monkeypatch) -> dict:
    monkeypatch.setenv('MMSWIN_DATA', str(data))
    train_tool.main([str(REPO / 'configs/own_data' / config), '--work-dir', str(work), '--cfg-options',
                     *SHORT, *options])
    saved = json.loads(next(work.glob('*/vis_data/scalars.json')).read_text().splitlines()[-1])
    return saved


@pytest.mark.slow
def test_segmentation_config_trains_on_the_converted_folder(converted, tmp_path, monkeypatch):
    work = tmp_path / 'seg'
    last = _train('upernet_swin_t_own.py', converted['seg'], work,
                  ['train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
                   'train_dataloader.batch_size=2'],  # 2: the pooling module's BatchNorm needs more than 1 value
                  monkeypatch)
    assert 'mIoU' in last, last
    from mmengine.config import Config
    saved = Config.fromfile(str(work / 'upernet_swin_t_own.py'))  # what tools/test.py reads later: no env needed
    assert saved.model.decode_head.num_classes == saved.model.auxiliary_head.num_classes == len(CLASSES)
    assert list(saved.train_dataloader.dataset.metainfo.classes) == CLASSES
    assert (work / 'iter_2.pth').is_file()


@pytest.mark.slow
def test_detection_config_trains_on_the_converted_folder(converted, tmp_path, monkeypatch):
    work = tmp_path / 'det'
    last = _train('mask_rcnn_swin_t_fpn_own.py', converted['det'], work,
                  ['train_cfg.max_epochs=1', 'train_cfg.val_interval=1', 'default_hooks.checkpoint.interval=1',
                   'train_dataloader.batch_size=1', 'train_dataloader.dataset.indices=1'],  # one iteration
                  monkeypatch)
    assert 'coco/bbox_mAP' in last and 'coco/segm_mAP' in last, last
    from mmengine.config import Config
    saved = Config.fromfile(str(work / 'mask_rcnn_swin_t_fpn_own.py'))
    things = CLASSES[1:]  # the COCO output has no background class
    assert saved.model.roi_head.bbox_head.num_classes == saved.model.roi_head.mask_head.num_classes == len(things)
    assert list(saved.val_dataloader.dataset.metainfo.classes) == things
    assert (work / 'epoch_1.pth').is_file()


@pytest.mark.parametrize('content, expected', [
    (None, 'meta.json not found: the own-data configs read the class names'),
    ('{"classes": [', 'is not JSON'),
    ('{"classes": []}', 'holds no "classes" list'),
    ('{"classes": ["a", "b"], "palette": [[0, 0, 0]]}', 'one [r, g, b] per class (2), found 1'),
])
def test_a_folder_without_a_usable_meta_json_is_one_message(tmp_path, monkeypatch, capsys, content, expected):
    if content is not None:
        (tmp_path / 'meta.json').write_text(content)
    monkeypatch.setenv('MMSWIN_DATA', str(tmp_path))
    assert run_tool(train_tool.main, [str(REPO / 'configs/own_data/upernet_swin_t_own.py')], prog='train') == 1
    err = capsys.readouterr().err
    assert err.startswith('train: error: ') and expected in err and 'Traceback' not in err, err
    assert 'MMSWIN_DATA=FOLDER' in err
