"""int8 inference (``mmswin.apis.quantize``, ``tools/infer.py --int8 --calib DIR``) on a tiny UperNet + Swin:
the quantized graph agrees with float32, the compiled int8 graph with the quantization's own arithmetic, mmseg's
``predict`` runs through it, the tool writes its predictions, and what cannot run is refused before loading."""
from __future__ import annotations

import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from helpers import load_tool, randomize_, tiny_seg_config

from mmswin.apis import ToolError

pytest.importorskip('torchao', reason="int8 needs torchao (tools/requirements.txt installs it)")
quantize = pytest.importorskip('mmswin.apis.quantize')

infer = load_tool('infer.py')
SIDE = 256  # at least the tiny Swin's exportable minimum (225: no size-1 window grid at stride 32)


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny UperNet + Swin config whose test pipeline keeps 256 px, random weights saved as a checkpoint, and
    images: ``(config, checkpoint, images dir, calibration dir)``."""
    root = tmp_path_factory.mktemp('int8')
    cfg = tiny_seg_config(str(root / 'tiny.py'), str(root),
                          f"test_pipeline[1]['scale'] = ({SIDE}, {SIDE})\n"
                          "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))")
    from mmseg.datasets import ADE20KDataset

    from mmswin.apis.export import load_config, segmentor_from_config
    segmentor = randomize_(segmentor_from_config(load_config(cfg)), seed=3)
    ckpt = str(root / 'tiny.pth')
    meta = dict(classes=ADE20KDataset.METAINFO['classes'], palette=ADE20KDataset.METAINFO['palette'])
    torch.save(dict(state_dict=segmentor.state_dict(), meta=dict(dataset_meta=meta)), ckpt)
    rng = np.random.default_rng(0)
    for folder, shapes in (('images', [(SIDE, SIDE), (SIDE, SIDE)]), ('calib', [(SIDE, SIDE), (240, SIDE)])):
        for i, (h, w) in enumerate(shapes):
            smooth = np.kron(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3)), np.ones((16, 16, 1)))[:h, :w]
            mmcv.imwrite(smooth.astype(np.uint8), str(root / folder / f'{folder}_{i}.png'))
    return cfg, ckpt, str(root / 'images'), str(root / 'calib')


def test_quantized_graph_agrees_with_float32_and_serves_predict(tiny):
    """The quantization and ``install_int8``'s routing, with the converted graph uncompiled (the compile is the
    end-to-end test's)."""
    cfg, ckpt, images, calib_dir = tiny
    model = infer.load_model(cfg, ckpt, 'cpu', None)
    calib = quantize.calibration_inputs(model, infer.list_images([calib_dir]))
    assert [tuple(x.shape[2:]) for x in calib] == [(SIDE, SIDE), (240, SIDE)]  # any sizes calibrate one graph
    converted, summary = quantize.quantize_segmentor(model, calib, reduce_range=True, log=lambda _: None)
    assert summary['quantized_ops'] >= 20  # patch embeds, qkv / proj / MLP linears, the head's convolutions

    x = quantize.calibration_inputs(model, infer.list_images([images]))[0]
    with torch.no_grad():
        ref = quantize.DecodeHeadLogits(model)(x)  # float32, the model itself is untouched
        reference_arithmetic = converted(x)  # quantize / dequantize around float ops
    assert rel_l2(reference_arithmetic, ref) < 0.05

    graphs = quantize.Int8Graphs(converted, summary['min_side'], log=lambda _: None)
    graphs.compiled = converted  # the routing below, without inductor
    small = x[:, :, :200, :208]  # a side below the exportable minimum: float32
    other = x[:, :, :240]  # a second size, beyond max_sizes=1 below: float32 too
    meta = [dict(img_shape=x.shape[2:])]
    with torch.no_grad():
        float_logits = model.encode_decode(x, meta)
        float_small = model.encode_decode(small, [dict(img_shape=small.shape[2:])])
        float_other = model.encode_decode(other, [dict(img_shape=other.shape[2:])])
        quantize.install_int8(model, graphs)
        int8_logits = model.encode_decode(x, meta)  # what predict / test_step call
        assert torch.equal(model.encode_decode(small, [dict(img_shape=small.shape[2:])]), float_small)
        pair = model.encode_decode(torch.cat([x, x]), meta * 2)  # a batch: image by image through the graph
        graphs.max_sizes = 1
        assert torch.equal(model.encode_decode(other, [dict(img_shape=other.shape[2:])]), float_other)
    assert int8_logits.shape == float_logits.shape and rel_l2(int8_logits, float_logits) < 0.05
    assert pair.shape[0] == 2 and torch.allclose(pair, int8_logits.expand_as(pair))
    assert graphs.sizes == {tuple(x.shape)}  # the small and the extra size never reached the graph


@pytest.mark.slow
def test_infer_int8_compiles_once_and_writes_the_predictions(tiny, tmp_path, capsys, monkeypatch):
    cfg, ckpt, images, calib_dir = tiny
    installed = []
    install = quantize.install_int8
    monkeypatch.setattr(quantize, 'install_int8', lambda seg, graphs: (installed.append((seg, graphs)),
                                                                       install(seg, graphs)))
    records = infer.main([cfg, ckpt, images, '--int8', '--calib', calib_dir, '--device', 'cpu',
                          '--out-dir', str(tmp_path)])
    out = capsys.readouterr().out
    assert 'int8:' in out and 'calibrated on 2 image(s)' in out and 'compiling for inputs of 256x256' in out
    assert out.count('compiling for inputs') == 1  # both images have one size: one compile
    assert len(records) == 2
    for record in records:
        labels = mmcv.imread(record['label_map'], flag='unchanged')
        assert labels.shape == (record['height'], record['width']) and osp.isfile(record['visualization'])

    (segmentor, graphs), = installed  # the compiled oneDNN int8 kernels against the quantization's arithmetic
    x = quantize.calibration_inputs(segmentor, infer.list_images([images]))[0]
    with torch.no_grad():
        assert rel_l2(graphs(x), graphs.compiled._orig_mod(x)) < 0.02
    assert graphs.sizes == {tuple(x.shape)}


@pytest.mark.parametrize('extra, message', [
    (['--int8'], '--int8 needs --calib DIR'),
    (['--calib', 'somewhere'], '--calib is for --int8'),
    (['--int8', '--calib', 'somewhere', '--amp'], 'choose one'),
    (['--int8', '--calib', 'somewhere', '--device', 'cuda:0'], 'cannot run on cuda:0'),
])
def test_int8_options_that_cannot_run_are_refused_before_loading(extra, message):
    with pytest.raises(ToolError, match=message):
        infer.main(['no_config.py', 'no_checkpoint.pth', 'no_images', *extra])


def test_int8_is_refused_on_a_cpu_that_is_not_x86(monkeypatch):
    monkeypatch.setattr(quantize.platform, 'machine', lambda: 'aarch64')
    with pytest.raises(ToolError, match='x86 int8 kernels .* aarch64'):
        infer.main(['no_config.py', 'no_checkpoint.pth', 'no_images', '--int8', '--calib', 'c', '--device', 'cpu'])
