"""tools/deployment/export_onnx.py (command line) and mmswin.apis.export: ONNX export of both backbones and of a
UperNet segmentor in predict mode with
dynamic batch / height / width, checked in ONNX Runtime against PyTorch; torch.export programs of both backbones;
the exportable minimum side; the messages for detectors, unknown backbones and too small inputs.

Small archs throughout; the three ONNX exports take 25-50 s each on 2 CPU cores, the saved-and-loaded .pt2
about 30 s (marked slow)."""
from __future__ import annotations

import os.path as osp

import pytest
import torch

onnx = pytest.importorskip('onnx')
ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')
pytest.importorskip('mmseg')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SWIN_SMALL = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
SHUNTED_SMALL = dict(depths=(1, 1, 1, 1), num_conv=0, embed_dims=(16, 32, 64, 64), num_heads=(2, 2, 4, 4))
UPERNET_SWIN_SMALL = {  # configs/upernet_swin_t_ade20k.py shrunk: C=16 Swin with a shifted pair in stage 1 only
    # (export time grows with the blocks; the backbone tests shift in every stage), 32-channel UperNet, 5 classes
    'model.backbone.arch': dict(_delete_=True, **dict(SWIN_SMALL, depths=(2, 1, 1, 1))),
    'model.decode_head.in_channels': [16, 32, 64, 128], 'model.decode_head.channels': 32,
    'model.decode_head.num_classes': 5, 'model.auxiliary_head.in_channels': 64,
    'model.auxiliary_head.channels': 16, 'model.auxiliary_head.num_classes': 5,
}


from helpers import load_tool  # noqa: E402

T = load_tool('deployment/export_onnx.py')  # the command line: parse_args, run, main
import mmswin.apis.export as E  # noqa: E402  (the export functions)


def _backbone(family: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return E.build_backbone(family, SHUNTED_SMALL if family == 'shunted' else SWIN_SMALL)


def _session(path: str):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


# ----------------------------------------------------------------------------------------------------------------
# The exportable minimum and the error messages (fast)
# ----------------------------------------------------------------------------------------------------------------
def test_min_export_side():
    """Swin: two windows per side in every computed stage; Shunted: two tokens after every aggregation."""
    assert E.min_export_side(_backbone('swin')) == 225  # 7 * 32 + 1
    assert E.min_export_side(E.build_backbone('swin', SWIN_SMALL, out_indices=(0, 1, 2))) == 113  # 7 * 16 + 1
    assert E.min_export_side(E.build_backbone('swin', SWIN_SMALL, window_size=12)) == 385  # 12 * 32 + 1
    assert E.min_export_side(_backbone('shunted')) == 63  # stage-1 map 16 = 2 tokens of the stride-8 aggregation
    assert E.default_verify_sizes(225) == [(1, 256, 320), (1, 257, 321), (2, 417, 333)]
    assert E.default_verify_sizes(385) == [(1, 416, 480), (1, 417, 481), (2, 577, 493)]


def test_side_below_minimum_is_refused(capsys):
    argv = ['--backbone', 'swin', '--arch', str(SWIN_SMALL), '--skip-onnx', '--shape', '224', '320']
    assert T.main(argv) == 1
    err = capsys.readouterr().err
    assert 'the sample input side 224 is below the exportable minimum 225 px' in err
    assert 'two 7x7 windows along each side' in err and 'Use sides >= 225' in err
    assert T.main(['--backbone', 'shunted', '--arch', str(SHUNTED_SMALL), '--min-size', '40']) == 1
    assert '--min-size 40 is below the exportable minimum 63 px' in capsys.readouterr().err


def test_unknown_backbone_is_refused(capsys):
    with pytest.raises(E.ExportError, match="unknown backbone 'resnet': this tool exports the families 'shunted' "
                                            ".*'swin'"):
        E.build_backbone('resnet')
    assert T.main(['--backbone', 'vit']) == 1
    assert "unknown backbone 'vit'" in capsys.readouterr().err
    cfg = E.load_config(osp.join(REPO, 'configs', 'upernet_swin_t_ade20k.py'),
                        {'model.backbone': dict(_delete_=True, type='mmseg.ResNetV1c', depth=18)})
    with pytest.raises(E.ExportError, match="unknown backbone type 'mmseg.ResNetV1c' in the config"):
        E.backbone_from_config(cfg)


def test_detector_config_is_refused(capsys):
    """Mask R-CNN / Cascade R-CNN: the whole model needs mmdeploy; the backbone alone is exportable."""
    config = osp.join(REPO, 'configs', 'mask_rcnn_swin_t_fpn_1x_coco.py')
    cfg = E.load_config(config)
    with pytest.raises(E.ExportError) as info:
        E.resolve_part(cfg)
    message = str(info.value)
    assert message.startswith("the config's model is a two-stage detector (MaskRCNN: rpn_head + roi_head)")
    assert 'mmdeploy' in message and 'add --part backbone' in message
    cfg.model.type = 'CascadeRCNN'
    with pytest.raises(E.ExportError, match=r'two-stage detector \(CascadeRCNN: rpn_head \+ roi_head\)'):
        E.resolve_part(cfg, 'segmentor')
    assert E.resolve_part(cfg, 'backbone') == 'backbone'
    assert T.main([config]) == 1
    assert 'mmdeploy' in capsys.readouterr().err
    backbone = E.backbone_from_config(E.load_config(config, {'model.backbone.arch': dict(_delete_=True, **SWIN_SMALL)}))
    assert type(backbone).__name__ == 'SwinTransformer' and backbone.arch['embed_dims'] == 16


def test_exportable_adaptive_pool_equals_torch():
    """The pooling-matrix replacement of nn.AdaptiveAvgPool2d (UperNet's pyramid pooling) at non-divisible sizes."""
    torch.manual_seed(0)
    for size in [(8, 10), (9, 11), (7, 13), (24, 31), (1, 5)]:
        x = torch.randn(2, 4, *size)
        for out in (1, 2, 3, 6, (2, None)):
            want = torch.nn.AdaptiveAvgPool2d(out)(x)
            got = E.ExportableAdaptiveAvgPool2d(out)(x)
            assert got.shape == want.shape
            assert (got - want).abs().max() < 1e-6, (size, out)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1), torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(3)))
    assert E.replace_adaptive_pools(module) == 1
    assert isinstance(module[1][0], E.ExportableAdaptiveAvgPool2d) and module[1][0].output_size == (3, 3)


# ----------------------------------------------------------------------------------------------------------------
# torch.export (10 s per capture; loading a saved .pt2 takes another 10-15 s)
# ----------------------------------------------------------------------------------------------------------------
def _check_program(program, backbone, sizes, minimum):
    for h, w in sizes:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            want, got = backbone(x), program(x)
        assert len(got) == 4
        for g, r in zip(got, want):
            assert g.shape == r.shape
            # eager inference runs SDPA on gathered windows, the exported program explicit products on views
            assert (g - r).abs().max() <= 1e-5
    with pytest.raises(Exception, match=f'>= {minimum}'):  # the range is enforced by the program
        program(torch.randn(1, 3, minimum - 1, 320))


def test_torch_export_shunted_equals_eager():
    backbone = _backbone('shunted')
    program = E.capture(backbone, torch.randn(1, 3, 256, 320), 63, dynamic_batch=False, inference=True)
    assert sorted((int(r.lower), int(r.upper)) for r in program.range_constraints.values()) == \
        [(63, E.DEFAULT_MAX_SIDE)] * 2
    _check_program(program.module(), backbone, [(63, 97), (131, 99)], 63)


def test_torch_export_swinv2_equals_eager():
    """Swin V2 (window 8): every stage map larger than the window from 257 px on, so one program serves every size
    from there (no shrunk-window branch inside the range)."""
    backbone = _backbone('swinv2')
    assert E.min_export_side(backbone) == 257  # 8 * 32 + 1
    program = E.capture(backbone, torch.randn(1, 3, 288, 320), 257, dynamic_batch=False, inference=True)
    _check_program(program.module(), backbone, [(257, 321), (417, 333)], 257)


@pytest.mark.slow
def test_torch_export_swin_saved_and_loaded_equals_eager(tmp_path):
    backbone = _backbone('swin')
    path = str(tmp_path / 'swin.pt2')
    info = E.export_pt2(backbone, path, torch.randn(1, 3, 256, 320), 225)
    assert info['range_constraints'] == {'height': (225, E.DEFAULT_MAX_SIDE), 'width': (225, E.DEFAULT_MAX_SIDE)}
    _check_program(torch.export.load(path).module(), backbone, [(257, 321), (417, 333)], 225)


# ----------------------------------------------------------------------------------------------------------------
# ONNX (25-50 s each)
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize('family,sizes', [
    ('swin', [(1, 256, 320), (1, 257, 321), (2, 417, 333)]),
    ('shunted', [(1, 63, 97), (2, 131, 99), (1, 257, 321)]),
    ('swinv2', [(1, 288, 320), (1, 289, 321), (2, 417, 333)]),
])
def test_onnx_backbone_matches_pytorch(family, sizes, tmp_path):
    """One ONNX file, dynamic batch / height / width, ONNX Runtime within 1e-4 of PyTorch at three sizes."""
    backbone = _backbone(family)
    minimum = E.min_export_side(backbone)
    path = str(tmp_path / f'{family}.onnx')
    info = E.export_onnx(backbone, path, torch.randn(2, 3, 288, 320), minimum,
                         output_names=['level0', 'level1', 'level2', 'level3'])
    assert info['inputs'] == {'input': ['batch', 3, 'height', 'width']}
    assert list(info['outputs']) == ['level0', 'level1', 'level2', 'level3']
    assert all(shape[0] == 'batch' and isinstance(shape[2], str) for shape in info['outputs'].values())
    onnx.checker.check_model(path)
    session = _session(path)
    gen = torch.Generator().manual_seed(1)
    for b, h, w in sizes:
        x = torch.randn(b, 3, h, w, generator=gen)
        with torch.no_grad():
            want = backbone(x)
        got = session.run(None, {'input': x.numpy()})
        assert [tuple(g.shape) for g in got] == [tuple(r.shape) for r in want]
        diff = max(float((torch.from_numpy(g) - r).abs().max()) for g, r in zip(got, want))
        assert diff <= 1e-4, (family, (b, h, w), diff)
    rows = E.verify_onnx(path, torch.no_grad()(lambda x: tuple(backbone(x))), sizes[:1])  # the tool agrees
    assert rows[0]['ok'] and rows[0]['max_abs_diff'] <= 1e-4


@pytest.mark.slow
@pytest.mark.filterwarnings('ignore:``build_loss`` would be deprecated soon:UserWarning')  # mmseg's own heads
@pytest.mark.filterwarnings('ignore:Default ``avg_non_ignore`` is False:UserWarning')
def test_onnx_upernet_predict_mode_gives_the_class_map_of_predict(tmp_path):
    """A tiny Swin UperNet (configs/upernet_swin_t_ade20k.py shrunk) through the command line path with a
    checkpoint: on odd-sized inputs the ONNX logits are within 1e-4 of model.predict's seg_logits and the class
    map is its pred_sem_seg (up to float ties of the two best logits)."""
    config = osp.join(REPO, 'configs', 'upernet_swin_t_ade20k.py')
    torch.manual_seed(3)
    model = E.segmentor_from_config(E.load_config(config, UPERNET_SWIN_SMALL))
    checkpoint = str(tmp_path / 'upernet.pth')
    torch.save({'meta': {'iter': 1}, 'state_dict': model.state_dict()}, checkpoint)
    out = str(tmp_path / 'upernet.onnx')
    args = T.parse_args([config, '--checkpoint', checkpoint, '-o', out, '--verify', '--verify-sizes', '2:231x289'])
    args.cfg_options = UPERNET_SWIN_SMALL  # a dict-valued option (the arch) cannot be written on the command line
    summary = T.run(args)
    assert summary['part'] == 'segmentor' and summary['min_side'] == 225 and summary['ok']
    assert summary['onnx']['inputs'] == {'input': ['batch', 3, 'height', 'width']}
    assert summary['onnx']['outputs'] == {'seg': ['batch', 'height', 'width'],
                                          'logits': ['batch', 5, 'height', 'width']}
    row = summary['rows'][0]
    assert (row['batch'], row['height'], row['width'], row['pixels']) == (2, 231, 289, 2 * 231 * 289)
    assert row['max_abs_diff'] <= 1e-4 and row['seg_mismatch_not_tie'] == 0 and row['seg_mismatch'] <= 2

    from mmseg.structures import SegDataSample
    session = _session(out)
    x = torch.randn(1, 3, 257, 321, generator=torch.Generator().manual_seed(5))
    meta = dict(ori_shape=(257, 321), img_shape=(257, 321), pad_shape=(257, 321))
    with torch.no_grad():
        pred = model.predict(x, [SegDataSample(metainfo=meta)])[0]
    seg, logits = session.run(None, {'input': x.numpy()})
    assert seg.dtype == 'int64' and seg.shape == (1, 257, 321) and logits.shape == (1, 5, 257, 321)
    want, want_logits = pred.pred_sem_seg.data, pred.seg_logits.data  # (1, H, W), (5, H, W)
    assert len(torch.unique(want)) >= 3  # a map of several classes, not a constant
    assert (torch.from_numpy(logits[0]) - want_logits).abs().max() <= 1e-4
    # The class map is predict's, except where predict's two best logits are within 1e-4 (a float tie that any
    # change in summation order may break: 0 to 4 pixels of 100k with random weights); there the other one of
    # the two is chosen.
    top2 = want_logits.topk(2, dim=0)
    tie = (top2.values[0] - top2.values[1]) < 1e-4  # H, W
    got = torch.from_numpy(seg)
    differ = got != want
    assert not (differ[0] & ~tie).any()
    assert int(differ.sum()) <= int(tie.sum()) <= 8
    assert torch.equal(got[0][differ[0]], top2.indices[1][differ[0]])
