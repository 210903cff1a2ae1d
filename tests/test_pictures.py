"""mmswin.apis.pictures: titles over ground truth | prediction, the per-image scores in them, and the legend of the
classes present -- on synthetic pictures and on mmdet's / mmseg's own visualizers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip('mmdet')
pytest.importorskip('mmseg')

from mmswin.apis import pictures  # noqa: E402

W, H = 160, 96
CLASSES = ('background', 'person', 'car')
PALETTE = [(0, 0, 0), (220, 20, 60), (0, 0, 142)]


def _dark(band: np.ndarray) -> int:
    """Pixels of a white band that something (text, a swatch) was drawn on."""
    return int((band.min(axis=2) < 128).sum())


def test_titles_sit_over_their_own_half_and_leave_the_picture_alone():
    picture = np.random.default_rng(0).integers(0, 255, (H, 2 * W, 3), dtype=np.uint8)
    titled = pictures.add_titles(picture, ['ground truth: a', 'prediction: mIoU 50.0'])
    band = titled.shape[0] - H
    assert band > 8 and titled.shape[1:] == picture.shape[1:]
    np.testing.assert_array_equal(titled[band:], picture)
    assert _dark(titled[:band, :W]) > 20 and _dark(titled[:band, W:]) > 20
    # a title longer than its half is cut with an ellipsis instead of running into the other half
    long = pictures.add_titles(picture, ['x' * 400, ''])
    assert _dark(long[:band, :W]) > 20 and _dark(long[:band, W:]) == 0


def test_legend_shows_each_colour_and_wraps_into_rows():
    picture = np.full((H, W, 3), 128, dtype=np.uint8)
    entries = [('person x2', (220, 20, 60)), ('car x1', (0, 0, 142))]
    legend = pictures.add_legend(picture, entries)
    band = legend[H:]
    for _, color in entries:
        assert (band == np.array(color, dtype=np.uint8)).all(axis=2).sum() > 9, color
    many = pictures.add_legend(picture, [(f'class number {i}', (i, 100, 200)) for i in range(12)])
    assert many.shape[0] - H >= 3 * band.shape[0]  # 12 entries do not fit one 160-pixel row
    empty = pictures.add_legend(picture, [])
    assert _dark(empty[H:]) > 20  # 'nothing predicted'


def test_segmentation_scores():
    gt = np.array([[0, 0, 1, 1, 255]])
    pred = np.array([[0, 1, 1, 1, 2]])
    miou, acc = pictures.segmentation_scores(gt, pred)
    assert miou == pytest.approx((1 / 2 + 2 / 3) / 2) and acc == pytest.approx(3 / 4)  # class 2 only on ignored
    assert pictures.segmentation_scores(np.full((2, 2), 255), np.zeros((2, 2))) is None
    with pytest.raises(ValueError, match='differ in size'):
        pictures.segmentation_scores(np.zeros((2, 2)), np.zeros((2, 3)))


def test_legend_entries():
    label_map = np.array([[1, 1, 1, 2], [1, 2, 0, 0]])
    assert pictures.seg_legend(label_map, CLASSES, PALETTE) == [
        ('person 50%', PALETTE[1]), ('background 25%', PALETTE[0]), ('car 25%', PALETTE[2])]
    assert pictures.det_legend([2, 1, 2], CLASSES, PALETTE) == [('car x2', PALETTE[2]), ('person x1', PALETTE[1])]


def _seg_sample():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gt = torch.zeros(1, H, W, dtype=torch.long)
    gt[:, 20:60, 30:90] = 1
    pred = gt.clone()
    pred[:, 20:60, 60:90] = 2
    sample = SegDataSample()
    sample.gt_sem_seg = PixelData(data=gt)
    sample.pred_sem_seg = PixelData(data=pred)
    return sample


def _det_sample():
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData
    sample = DetDataSample()
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[10., 10., 60., 60.]]), labels=torch.tensor([1]))
    sample.pred_instances = InstanceData(bboxes=torch.tensor([[12., 10., 60., 62.], [11., 11., 59., 60.],
                                                              [90., 20., 150., 80.]]),
                                         labels=torch.tensor([1, 2, 2]), scores=torch.tensor([0.9, 0.4, 0.7]))
    return sample


def test_comparison_titles():
    seg = pictures.comparison_titles(_seg_sample(), 'img7')
    # IoU: background 1, person 1200 / 2400, car 0 / 1200; accuracy (12960 + 1200) / 15360
    assert seg[0] == 'ground truth: img7'
    assert seg[1] == 'prediction: mIoU 50.0, pixel acc. 92.2%'
    det = pictures.comparison_titles(_det_sample(), 'img7', score_thr=0.5)
    assert det == ['ground truth: img7, 1 objects', 'prediction: 2 of 3 scoring > 0.5']


@pytest.mark.parametrize('kind', ['seg', 'det'])
def test_paint_returns_ground_truth_beside_prediction_and_writes_nothing(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == 'seg':
        cfg, sample = dict(type='mmseg.SegLocalVisualizer'), _seg_sample()
    else:
        cfg, sample = dict(type='mmdet.DetLocalVisualizer'), _det_sample()
    painter = pictures.build_painter(cfg, dict(classes=CLASSES, palette=PALETTE), f'test_paint_{kind}')
    image = np.full((H, W, 3), 90, dtype=np.uint8)
    both = pictures.paint(painter, image, sample, draw_gt=True, score_thr=0.5)
    alone = pictures.paint(painter, image, sample, draw_gt=False, score_thr=0.5)
    assert both.shape == (H, 2 * W, 3) and alone.shape == (H, W, 3)
    np.testing.assert_array_equal(both[:, W:], alone)
    assert not (both[:, :W] == both[:, W:]).all()  # the two halves show different things
    assert 'add_image' not in vars(painter) and not list(tmp_path.iterdir())
    if kind == 'det':  # the legend's colours are the boxes' colours
        colors = pictures.det_colors(painter, len(CLASSES))
        assert colors == PALETTE
        blended = 0.8 * np.array(PALETTE[2]) + 0.2 * 90  # mmdet draws boxes at alpha 0.8
        assert (np.abs(alone[15:25, 85:155].astype(float) - blended).max(axis=2) < 12).any()
