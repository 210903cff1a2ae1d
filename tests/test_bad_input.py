"""Bad inputs give clear errors naming the file, never a silent wrong result.

Covers: corrupt / truncated images, annotations pointing at missing files, label maps whose size differs from their
image, COCO image sizes that differ from the json, label values outside the class list, a loss turning NaN / inf,
and bad labelme exports. Synthetic data only (small images written here); about 10 s.
"""
from __future__ import annotations

import json
import os.path as osp
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from mmswin.datasets import DataCheckError, check_dataset, check_sample
from mmswin.engine import DataCheckHook

REPO = Path(__file__).resolve().parents[1]
import mmswin.datasets.labelme as labelme2mmswin  # noqa: E402  (the converter's library)
from helpers import load_tool  # noqa: E402


def _jpeg(path: Path, size=(40, 30), color=(200, 10, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new('RGB', size, color).save(path, quality=90)
    return path


def _label(path: Path, size=(40, 30), value=1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8), mode='L').save(path)
    return path


def _ade(root: Path, n: int = 2) -> Path:
    for i in range(n):
        rng = np.random.default_rng(i)  # noisy image: a truncation then cuts real data
        arr = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        (root / 'images/training').mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / f'images/training/im{i}.jpg', quality=95)
        _label(root / f'annotations/training/im{i}.png', value=1 + i)
    return root


# ------------------------------------------------------------------------------------------ file-level checks


def test_good_sample_passes(tmp_path):
    img, seg = _jpeg(tmp_path / 'a.jpg'), _label(tmp_path / 'a.png')
    modes = {level: check_sample({'img_path': str(img), 'seg_map_path': str(seg)}, level, num_classes=3,
                                 reduce_zero_label=True) for level in ('exists', 'header', 'decode')}
    assert modes == {'exists': '', 'header': 'RGB', 'decode': 'RGB'}  # 'exists' opens nothing


def test_missing_image_names_file(tmp_path):
    with pytest.raises(DataCheckError, match=r'image file not found: .*nothere\.jpg'):
        check_sample({'img_path': str(tmp_path / 'nothere.jpg')}, 'exists')


def test_missing_label_map_names_file(tmp_path):
    img = _jpeg(tmp_path / 'a.jpg')
    with pytest.raises(DataCheckError, match=r'label map file not found: .*a\.png'):
        check_sample({'img_path': str(img), 'seg_map_path': str(tmp_path / 'a.png')}, 'header')


def test_garbage_image_names_file(tmp_path):
    bad = tmp_path / 'garbage.jpg'
    bad.write_bytes(b'this is not a jpeg at all' * 10)
    with pytest.raises(DataCheckError, match=r'not a readable image: .*garbage\.jpg'):
        check_sample({'img_path': str(bad)}, 'header')


@pytest.mark.parametrize('level', ['header', 'decode'])
def test_truncated_jpeg_names_file(tmp_path, level):
    img = tmp_path / 'images/training/im0.jpg'
    _ade(tmp_path)
    data = img.read_bytes()
    img.write_bytes(data[: len(data) // 2])  # what an interrupted copy leaves
    with pytest.raises(DataCheckError, match=r'corrupt or truncated: .*im0\.jpg'):
        check_sample({'img_path': str(img)}, level)


def test_truncated_png_label_names_file(tmp_path):
    img, seg = _jpeg(tmp_path / 'a.jpg'), tmp_path / 'a.png'
    Image.fromarray(np.random.default_rng(0).integers(0, 3, (30, 40), dtype=np.uint8), mode='L').save(seg)
    seg.write_bytes(seg.read_bytes()[: seg.stat().st_size // 2])
    with pytest.raises(DataCheckError, match=r'a\.png'):
        check_sample({'img_path': str(img), 'seg_map_path': str(seg)}, 'header')


def test_label_map_size_mismatch_names_both(tmp_path):
    img, seg = _jpeg(tmp_path / 'a.jpg', (40, 30)), _label(tmp_path / 'a.png', (20, 15))
    with pytest.raises(DataCheckError, match=r'label map .*a\.png is 20x15 but its image .*a\.jpg is 40x30'):
        check_sample({'img_path': str(img), 'seg_map_path': str(seg)}, 'header')


def test_coco_size_mismatch_names_image(tmp_path):
    img = _jpeg(tmp_path / 'a.jpg', (40, 30))
    with pytest.raises(DataCheckError, match=r'image .*a\.jpg is 40x30 but its annotation .* says 50x30'):
        check_sample({'img_path': str(img), 'width': 50, 'height': 30}, 'header', source='instances.json')


def test_label_values_outside_classes(tmp_path):
    img, seg = _jpeg(tmp_path / 'a.jpg'), _label(tmp_path / 'a.png', value=7)
    info = {'img_path': str(img), 'seg_map_path': str(seg)}
    check_sample(info, 'header', num_classes=3, reduce_zero_label=True)  # header level does not read pixels
    with pytest.raises(DataCheckError, match=r'a\.png holds values \[7\] outside 0 \(ignore\) and 1\.\.3'):
        check_sample(info, 'decode', num_classes=3, reduce_zero_label=True)


def test_invalid_level_is_value_error(tmp_path):
    with pytest.raises(ValueError, match='level must be one of'):
        check_sample({'img_path': 'x'}, 'thorough')
    with pytest.raises(ValueError, match='level must be one of'):
        DataCheckHook(level='thorough')


# ------------------------------------------------------------------------- through the real data set classes


def _seg_dataset(root: Path):
    from mmseg.datasets import BaseSegDataset
    return BaseSegDataset(data_root=str(root), data_prefix=dict(img_path='images/training',
                                                                seg_map_path='annotations/training'),
                          img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True,
                          metainfo=dict(classes=('a', 'b', 'c')), pipeline=[])


def _fake_runner(dataset):
    import logging
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=dataset))
    return SimpleNamespace(train_loop=loop, val_loop=None, logger=logging.getLogger('test'))


def test_seg_dataset_missing_label_map_via_hook(tmp_path):
    root = _ade(tmp_path)
    (root / 'annotations/training/im1.png').unlink()
    with pytest.raises(DataCheckError, match=r'train data: label map file not found: .*im1\.png'):
        DataCheckHook().before_train(_fake_runner(_seg_dataset(root)))


def test_seg_dataset_size_mismatch_via_hook(tmp_path):
    root = _ade(tmp_path)
    _label(root / 'annotations/training/im0.png', (20, 15))
    with pytest.raises(DataCheckError, match=r'im0\.png is 20x15 but its image .*im0\.jpg is 40x30'):
        DataCheckHook().before_train(_fake_runner(_seg_dataset(root)))


def test_seg_dataset_good_passes(tmp_path):
    assert check_dataset(_seg_dataset(_ade(tmp_path)), 'decode') == 2


def _coco(root: Path, file_name='a.jpg', width=40) -> Path:
    _jpeg(root / 'img' / 'a.jpg')
    ann = {'images': [{'id': 1, 'file_name': file_name, 'width': width, 'height': 30}],
           'annotations': [{'id': 1, 'image_id': 1, 'category_id': 1, 'bbox': [2, 2, 20, 20], 'area': 400,
                            'iscrowd': 0, 'segmentation': [[2, 2, 22, 2, 22, 22, 2, 22]]}],
           'categories': [{'id': 1, 'name': 'thing'}]}
    (root / 'ann.json').write_text(json.dumps(ann))
    from mmdet.datasets import CocoDataset
    return CocoDataset(data_root=str(root), ann_file='ann.json', data_prefix=dict(img='img/'),
                       metainfo=dict(classes=('thing',)), pipeline=[], filter_cfg=None)


def test_coco_annotation_points_to_missing_image(tmp_path):
    dataset = _coco(tmp_path, file_name='missing.jpg')
    with pytest.raises(DataCheckError, match=r'image file not found: .*img/missing\.jpg \(referenced by '
                                             r'CocoDataset .*ann\.json\)'):
        check_dataset(dataset, 'exists')


def test_coco_image_of_other_size(tmp_path):
    with pytest.raises(DataCheckError, match=r'a\.jpg is 40x30 but its annotation .*ann\.json.* says 64x30'):
        check_dataset(_coco(tmp_path, width=64), 'header')


# ---------------------------------------------------------------------------------------------- NaN / inf loss


def _toy_runner(tmp_path, nan_at: int, max_iters: int = 5):
    import torch
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    import mmswin.engine  # noqa: F401

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(3))
            self.calls = 0

        def forward(self, inputs, data_samples=None, mode='tensor'):
            self.calls += 1
            loss = (self.w * inputs.float()).sum() ** 2
            if self.calls >= nan_at:
                loss = loss * float('nan')
            return {'loss_toy': loss}

    data = [dict(inputs=torch.tensor([1.0, 2.0, 3.0]))] * 4
    return Runner(model=Toy(), work_dir=str(tmp_path), experiment_name='nan',
                  train_dataloader=dict(dataset=data, sampler=dict(type='InfiniteSampler', shuffle=False),
                                        batch_size=1, collate_fn=dict(type='default_collate')),
                  train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
                  optim_wrapper=dict(optimizer=dict(type='SGD', lr=1e-3)),
                  default_hooks=dict(checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False, interval=1),
                                     logger=dict(type='LoggerHook', interval=1)),
                  custom_hooks=[dict(type='NonFiniteLossHook')], default_scope='mmengine')


def test_nan_loss_stops_before_saving(tmp_path):
    from mmswin.engine import NonFiniteLossError
    runner = _toy_runner(tmp_path, nan_at=3)
    with pytest.raises(NonFiniteLossError, match=r'not finite at iteration 3 .*loss_toy=nan.*iter_2\.pth'):
        runner.train()
    assert osp.isfile(tmp_path / 'iter_2.pth')
    assert not osp.exists(tmp_path / 'iter_3.pth'), 'the damaged model must not be checkpointed'
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_2.pth')


def test_finite_loss_trains_through(tmp_path):
    runner = _toy_runner(tmp_path, nan_at=10**9, max_iters=3)
    runner.train()
    assert (tmp_path / 'last_checkpoint').read_text().endswith('iter_3.pth')


# ------------------------------------------------------------------------------------------ labelme exports


def _labelme_json(folder: Path, stem='p', image=True, shapes=None, height=30, width=40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if image:
        _jpeg(folder / f'{stem}.jpg', (40, 30))
    shapes = shapes if shapes is not None else [
        {'label': 'cat', 'points': [[2, 2], [20, 2], [20, 20]], 'shape_type': 'polygon', 'group_id': None}]
    path = folder / f'{stem}.json'
    path.write_text(json.dumps({'version': '5.0', 'shapes': shapes, 'imagePath': f'{stem}.jpg', 'imageData': None,
                                'imageHeight': height, 'imageWidth': width}))
    return path


def test_labelme_missing_image_names_json(tmp_path):
    _labelme_json(tmp_path / 'in', image=False)
    with pytest.raises(labelme2mmswin.ConversionError, match=r'p\.json: image .*p\.jpg.* does not exist'):
        labelme2mmswin.convert(tmp_path / 'in', seg_out=tmp_path / 'out', val_equals_train=True)


def test_labelme_size_mismatch_names_json(tmp_path):
    _labelme_json(tmp_path / 'in', height=60)
    with pytest.raises(labelme2mmswin.ConversionError, match=r'p\.json: says the image is 40x60 but .* 40x30'):
        labelme2mmswin.convert(tmp_path / 'in', seg_out=tmp_path / 'out', val_equals_train=True)


def test_labelme_corrupt_image_names_it(tmp_path):
    _labelme_json(tmp_path / 'in')
    (tmp_path / 'in' / 'p.jpg').write_bytes(b'broken')
    with pytest.raises(labelme2mmswin.ConversionError, match=r'p\.jpg: not a readable image'):
        labelme2mmswin.convert(tmp_path / 'in', seg_out=tmp_path / 'out', val_equals_train=True)


def test_labelme_unknown_label(tmp_path):
    _labelme_json(tmp_path / 'in')
    (tmp_path / 'labels.txt').write_text('__ignore__\n_background_\ndog\n')
    with pytest.raises(labelme2mmswin.ConversionError, match=r"p\.json: label 'cat' is not in the class list"):
        labelme2mmswin.convert(tmp_path / 'in', seg_out=tmp_path / 'out', labels=tmp_path / 'labels.txt',
                               val_equals_train=True)


def test_voc_label_size_mismatch(tmp_path):
    src = tmp_path / 'voc'
    _jpeg(src / 'JPEGImages' / 'p.jpg', (40, 30))
    (src / 'SegmentationClass').mkdir(parents=True)
    Image.fromarray(np.zeros((15, 20), np.uint8), mode='P').save(src / 'SegmentationClass' / 'p.png')
    (src / 'class_names.txt').write_text('_background_\ncat\n')
    with pytest.raises(labelme2mmswin.ConversionError, match=r'p\.png is 20x15 but its image .*p\.jpg is 40x30'):
        labelme2mmswin.convert(src, seg_out=tmp_path / 'out', val_equals_train=True)


def test_converter_refuses_non_empty_output(tmp_path):
    _labelme_json(tmp_path / 'in')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'keep.txt').write_text('x')
    with pytest.raises(labelme2mmswin.ConversionError, match='not empty; pass --overwrite'):
        labelme2mmswin.convert(tmp_path / 'in', seg_out=tmp_path / 'out', val_equals_train=True)


# ------------------------------------------------------------------------------------------ the demo entry point


@pytest.mark.slow
def test_demo_stops_on_truncated_image_naming_it(tmp_path, capsys):
    from mmswin.datasets import demo_data
    run_demo = load_tool('run_demo.py')
    data = tmp_path / 'data'
    demo_data.prepare(data, log=lambda *_: None)  # from the cached sdist
    photo = data / 'demo_ade/images/training/2011_000025.jpg'
    photo.write_bytes(photo.read_bytes()[:20000])
    code = run_demo.main(['--config', str(REPO / 'configs/demo/upernet_swin_tiny_overfit.py'), '--data-root',
                          str(data), '--work-dir', str(tmp_path / 'work'), '--pretrained', 'none'])
    err = capsys.readouterr().err
    assert code == 1
    assert f'run_demo: error: train data: image file is corrupt or truncated: {photo}' in err
    assert not list((tmp_path / 'work').glob('*.pth')), 'stopped before training'
