"""``tools/analysis/int8_report.py`` without torchao: the trained-checkpoint options parse (and refuse what cannot
work), the padded size, and ``seg_scores`` -- pixel agreement and mIoU -- against mmseg's own ``IoUMetric``."""
from __future__ import annotations

import pytest
import torch
from helpers import load_tool
from mmseg.evaluation.metrics import IoUMetric

int8_report = load_tool('analysis/int8_report.py')


def test_trained_options_parse():
    args = int8_report.parse_args(['--parts', 'segmentor', '--checkpoint', 'iter_150.pth', '--data-root', 'd',
                                   '--fp-modules', 'segmentor.decode_head.conv_seg', '--reduce-range',
                                   '--int8-eager', '--no-bf16-inductor'])
    assert (args.checkpoint, args.data_root, args.calib_split, args.min_agreement) == ('iter_150.pth', 'd', 'train',
                                                                                       0.97)
    assert args.fp_modules == ['segmentor.decode_head.conv_seg'] and args.reduce_range and args.int8_eager
    defaults = int8_report.parse_args([])  # the random-weights run as before
    assert defaults.checkpoint is None and not defaults.reduce_range and defaults.fp_modules == []


@pytest.mark.parametrize('argv', [['--checkpoint', 'x.pth'],  # the backbone part has no checkpoint
                                  ['--parts', 'segmentor', '--data-root', 'd'],  # photos need trained weights
                                  ['--parts', 'segmentor', '--calib-split', 'val']])
def test_trained_options_refused_without_their_part(argv, capsys):
    with pytest.raises(SystemExit) as info:
        int8_report.parse_args(argv)
    assert info.value.code == 2 and '--' in capsys.readouterr().err


def test_padded_size():
    assert int8_report.padded_size([(256, 379), (256, 341)]) == (256, 384)
    assert int8_report.padded_size([(250, 320)], multiple=7) == (252, 322)
    with pytest.raises(ValueError):
        int8_report.padded_size([])


def test_seg_scores_counts_agreement_by_hand():
    ref = torch.tensor([[0, 1], [2, 3]])
    pred = torch.tensor([[0, 1], [2, 0]])  # one pixel of four differs
    label = torch.tensor([[0, 1], [255, 255]])  # ... and it is unlabelled
    scores = int8_report.seg_scores([pred], [ref], [label], num_classes=4)
    assert scores['agreement'] == 0.75 and scores['agreement_labelled'] == 1.0
    assert scores['mIoU'] == 100.0 and scores['aAcc'] == 100.0  # classes 2, 3 have no labelled pixel: left out


def test_seg_scores_is_mmsegs_iou_metric():
    gen = torch.Generator().manual_seed(0)
    num_classes, preds, labels = 5, [], []
    for shape in ((7, 9), (5, 11), (8, 8)):
        preds.append(torch.randint(0, num_classes, (1, *shape), generator=gen))
        label = torch.randint(0, num_classes - 1, (1, *shape), generator=gen)  # the last class never labelled
        label[torch.rand(label.shape, generator=gen) < 0.2] = 255
        labels.append(label)
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(num_classes)])
    metric.process({}, [dict(pred_sem_seg=dict(data=p), gt_sem_seg=dict(data=y)) for p, y in zip(preds, labels)])
    expected = metric.compute_metrics(metric.results)
    scores = int8_report.seg_scores(preds, preds, labels, num_classes)
    assert scores['agreement'] == scores['agreement_labelled'] == 1.0
    assert scores['mIoU'] == pytest.approx(expected['mIoU'], abs=0.005)  # IoUMetric rounds to 2 decimals
    assert scores['aAcc'] == pytest.approx(expected['aAcc'], abs=0.005)
    assert 0 < expected['mIoU'] < 100


def test_seg_scores_refuses_maps_of_other_sizes():
    with pytest.raises(ValueError, match='shapes differ'):
        int8_report.seg_scores([torch.zeros(2, 3)], [torch.zeros(2, 3)], [torch.zeros(3, 2)], num_classes=2)
