"""Every known user error ends the tools with its message and exit status 1, no traceback (``--debug`` shows it).

The cases of README's "Bad input" table that are not covered elsewhere: an annotation file that is not JSON, a
COCO file without images, label values above ``num_classes``, images with 1 or 4 channels, a ``--cfg-options``
typo, a checkpoint of another arch; and the ``--debug`` switch.
"""
from __future__ import annotations

import json
import logging
import os.path as osp
import subprocess
import sys
from pathlib import Path

import mmcv
import pytest
import torch
from PIL import Image

from mmswin.apis import check_annotation_files, run_tool
from mmswin.datasets import DataCheckError, check_dataset
from helpers import TOOLS, load_tool, tiny_det_config, tiny_seg_config, write_ade, write_coco

REPO = Path(__file__).resolve().parents[1]

train_tool = load_tool('train.py')


def _tool(argv: list[str], capsys) -> tuple[int, str]:
    """tools/train.py as the command runs it (run_tool around main), in this process."""
    code = run_tool(train_tool.main, argv, prog='train.py')
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------------------ annotation files


def test_annotation_file_that_is_not_json(tmp_path, capsys):
    coco = write_coco(str(tmp_path))
    ann = Path(coco, 'annotations', 'instances_train2017.json')
    ann.write_text('{"images": [{"id": 1,' + ' ' * 10)  # an interrupted copy
    cfg = tiny_det_config(str(tmp_path / 'det.py'), coco)
    code, err = _tool([cfg, '--work-dir', str(tmp_path / 'work')], capsys)
    assert code == 1 and 'Traceback' not in err
    assert f'train.py: error: annotation file {ann} (train_dataloader.dataset.ann_file) is not JSON' in err
    assert 'line 1' in err and '--debug' in err


def test_coco_file_without_images(tmp_path, capsys):
    coco = write_coco(str(tmp_path))
    ann = Path(coco, 'annotations', 'instances_val2017.json')
    ann.write_text(json.dumps(dict(images=[], annotations=[], categories=[dict(id=1, name='person')])))
    cfg = tiny_det_config(str(tmp_path / 'det.py'), coco)
    code, err = _tool([cfg, '--work-dir', str(tmp_path / 'work')], capsys)
    assert code == 1 and f'{ann} (val_dataloader.dataset.ann_file) lists no images' in err


def test_large_annotation_file_gets_the_cheap_check(tmp_path, monkeypatch):
    import mmswin.apis.preflight as preflight
    coco = write_coco(str(tmp_path))
    monkeypatch.setattr(preflight, '_FULL_PARSE_BYTES', 10)
    from mmengine.config import Config
    cfg = Config.fromfile(tiny_det_config(str(tmp_path / 'det.py'), coco))
    assert check_annotation_files(cfg, ('train', 'val')) == 2
    ann = Path(coco, 'annotations', 'instances_train2017.json')
    ann.write_text(ann.read_text()[:-40])
    with pytest.raises(DataCheckError, match='not a complete JSON object'):
        check_annotation_files(cfg, ('train',))


# ------------------------------------------------------------------------------------- label values, channels


def test_label_value_above_num_classes(tmp_path, capsys):
    ade = write_ade(str(tmp_path))
    label = Path(ade, 'annotations', 'training', 'ADE_training_00000000.png')
    data = mmcv.imread(str(label), flag='unchanged')
    # class 199 after reduce_zero_label, for 150 classes: neither a class nor the ignore index. The whole map, so
    # that every random resize / crop of the training pipeline keeps it (an 8x8 corner was cropped away at times)
    data[:] = 200
    mmcv.imwrite(data, str(label))
    cfg = tiny_seg_config(str(tmp_path / 'seg.py'), ade, "custom_hooks = [dict(type='NonFiniteLossHook')]\n"
                          "train_cfg = dict(max_iters=1, val_interval=10)\n")
    code, err = _tool([cfg, '--work-dir', str(tmp_path / 'work')], capsys)
    assert code == 1 and 'Traceback' not in err
    assert 'a label map holds the class index 199' in err and "level='decode'" in err
    # the decode-level check names the file before training starts
    cfg = tiny_seg_config(str(tmp_path / 'seg2.py'), ade, "custom_hooks = [dict(type='DataCheckHook', "
                          "level='decode')]\ntrain_cfg = dict(max_iters=1, val_interval=10)\n")
    code, err = _tool([cfg, '--work-dir', str(tmp_path / 'work2')], capsys)
    assert code == 1 and f'label map {label} holds values [200]' in err


def _grey_and_rgba(ade: str) -> tuple[Path, Path]:
    images = Path(ade, 'images', 'training')
    grey, rgba = images / 'ADE_training_00000000.jpg', images / 'ADE_training_00000001.jpg'
    Image.open(grey).convert('L').save(grey)
    rgba = rgba.with_suffix('.png')
    Image.open(images / 'ADE_training_00000001.jpg').convert('RGBA').save(rgba)
    (images / 'ADE_training_00000001.jpg').unlink()
    return grey, rgba


def _ade_dataset(ade: str, color_type: str = 'color'):
    from mmseg.datasets import ADE20KDataset
    return ADE20KDataset(data_root=ade, data_prefix=dict(img_path='images/training',
                                                         seg_map_path='annotations/training'),
                         pipeline=[dict(type='LoadImageFromFile', color_type=color_type)])


def test_images_with_one_or_four_channels_are_converted_or_refused(tmp_path, caplog):
    ade = write_ade(str(tmp_path))
    grey, _ = _grey_and_rgba(ade)
    dataset = _ade_dataset(ade)
    dataset.data_list = [d for d in dataset.data_list if Path(d['img_path']).exists()]
    logger = logging.getLogger('mmswin-test-channels')
    with caplog.at_level(logging.WARNING, logger=logger.name):
        assert check_dataset(dataset, 'header', logger, 'train') == 1
    assert f'{grey} (L)' in caplog.text and 'converts them to 3 channels' in caplog.text
    # converted indeed: mmcv's loader hands the model 3 channels
    from mmcv.transforms import LoadImageFromFile
    assert LoadImageFromFile()(dict(img_path=str(grey)))['img'].shape[-1] == 3
    rgba = Path(ade, 'images', 'training', 'ADE_training_00000001.png')
    assert LoadImageFromFile()(dict(img_path=str(rgba)))['img'].shape[-1] == 3
    with pytest.raises(DataCheckError, match=r"not 3-channel colour .*\(L\).*color_type='unchanged'"):
        refused = _ade_dataset(ade, 'unchanged')
        refused.data_list = dataset.data_list
        check_dataset(refused, 'header', logger, 'train')


# -------------------------------------------------------------------------------- config and checkpoint mistakes


def test_cfg_options_typo(tmp_path, capsys):
    code, err = _tool([str(REPO / 'configs' / 'upernet_swin_t_ade20k.py'), '--cfg-options', 'train_cfg.max_iter=10'],
                      capsys)
    assert code == 1 and 'Traceback' not in err
    assert ("train.py: error: --cfg-options train_cfg.max_iter: train_cfg (IterBasedTrainLoop) has no key "
            "'max_iter'; did you mean 'train_cfg.max_iters'?") in err
    code, err = _tool([str(REPO / 'configs' / 'upernet_swin_t_ade20k.py'), '--cfg-options',
                       'model.backbone.drop_path_rat=0.1'], capsys)
    assert code == 1 and "did you mean 'model.backbone.drop_path_rate'?" in err


def test_checkpoint_of_another_arch(tmp_path, capsys):
    from mmswin.models.backbones.shunted import ShuntedTransformer
    ade = write_ade(str(tmp_path))
    wrong = tmp_path / 'shunted_t.pth'
    torch.save(ShuntedTransformer('tiny').state_dict(), wrong)  # a Shunted file for a Swin config
    cfg = tiny_seg_config(str(tmp_path / 'seg.py'), ade, f"model = dict(backbone=dict(init_cfg=dict("
                          f"type='Pretrained', checkpoint={str(wrong)!r})))\n")
    code, err = _tool([cfg, '--work-dir', str(tmp_path / 'work')], capsys)
    assert code == 1 and 'Traceback' not in err
    assert 'not of a Swin Transformer' in err and 'patch_embed1' in err and len(err) < 1500


def test_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run([sys.executable, osp.join(TOOLS, 'train.py'), str(REPO / 'configs/upernet_swin_t_ade20k.py'),
                           '--cfg-options', 'train_cfg.max_iter=10', '--debug'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1 and 'Traceback' in proc.stderr and 'ConfigError' in proc.stderr
    proc = subprocess.run([sys.executable, osp.join(TOOLS, 'train.py'), str(REPO / 'configs/upernet_swin_t_ade20k.py'),
                           '--cfg-options', 'train_cfg.max_iter=10'],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr and 'did you mean' in proc.stderr


# ------------------------------------------------------------------------ the everyday mistakes, every tool

infer_tool = load_tool('infer.py')
test_tool = load_tool('test.py')


def test_config_path_typo_names_the_close_configs(tmp_path):
    """The real command, a typo in the config name: one message and the configs meant, exit 1."""
    proc = subprocess.run([sys.executable, osp.join(TOOLS, 'train.py'), str(REPO / 'configs/upernet_swin_t_ade2k.py')],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr[-2000:]
    assert 'config file not found: ' in proc.stderr and 'did you mean' in proc.stderr
    assert 'configs/upernet_swin_t_ade20k.py' in proc.stderr


@pytest.fixture(scope='module')
def seg_config(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp('seg')
    return tiny_seg_config(str(root / 'seg.py'), write_ade(str(root)))


def _bad_checkpoints(folder: Path) -> dict[str, Path]:
    from mmswin.models.backbones.swin import SwinTransformer
    whole = folder / 'whole.pth'
    torch.save({'state_dict': {'backbone.patch_embed.projection.weight': torch.zeros(2)}}, whole)
    files = {'truncated': folder / 'half.pth', 'random': folder / 'random.pth', 'backbone': folder / 'backbone.pth'}
    files['truncated'].write_bytes(whole.read_bytes()[:200])
    files['random'].write_bytes(bytes(range(256)) * 64)
    arch = dict(embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))  # test_tools' tiny Swin
    torch.save(SwinTransformer(arch=arch).state_dict(), files['backbone'])  # an ImageNet-style backbone file
    return files


@pytest.mark.parametrize('kind, expected', [
    ('truncated', 'is not a readable torch checkpoint (truncated or another format)'),
    ('random', 'is not a readable torch checkpoint'),
    ('backbone', 'is a backbone checkpoint'),
    ('missing', 'checkpoint file not found'),
])
@pytest.mark.parametrize('tool', ['infer', 'test'])
def test_wrong_checkpoint_is_one_short_message(tool, kind, expected, seg_config, tmp_path, capsys):
    files = _bad_checkpoints(tmp_path)
    ckpt = str(files.get(kind, tmp_path / 'nothing.pth'))
    image = next(Path(seg_config).parent.rglob('*.jpg'))
    argv = [seg_config, ckpt, str(image)] if tool == 'infer' else [seg_config, ckpt, '--work-dir', str(tmp_path / 'w')]
    main = infer_tool.main if tool == 'infer' else test_tool.main
    assert run_tool(main, argv, prog=tool) == 1
    err = capsys.readouterr().err
    assert err.startswith(f'{tool}: error: ') and expected in err and 'Traceback' not in err, err
    assert len(err) < 1500, f'a short message, not a list of every key: {len(err)} characters'
    if kind == 'backbone':
        assert f'model.backbone.init_cfg.checkpoint={ckpt}' in err  # how to use it instead


def test_debug_is_in_every_tool_s_help():
    for tool in ('train.py', 'test.py', 'infer.py', 'analysis/get_flops.py', 'analysis/benchmark_model.py',
                 'dataset_converters/labelme2mmswin.py', 'model_converters/swin2mmswin.py',
                 'model_converters/shunted2mmswin.py', 'deployment/export_onnx.py', 'prepare_demo_data.py',
                 'run_demo.py'):
        proc = subprocess.run([sys.executable, osp.join(TOOLS, tool), '--help'], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0 and '--debug' in proc.stdout and 'MMSWIN_DEBUG' in proc.stdout, tool


def test_converter_errors_go_through_the_one_route(tmp_path, capsys):
    converter = load_tool('dataset_converters/labelme2mmswin.py')
    assert converter.main([str(tmp_path / 'nowhere'), '--seg-out', str(tmp_path / 'out')]) == 1
    assert capsys.readouterr().err.startswith('labelme2mmswin: error: ')
    with pytest.raises(Exception, match='does not exist'):  # --debug: the traceback
        converter.main([str(tmp_path / 'nowhere'), '--seg-out', str(tmp_path / 'out'), '--debug'])
