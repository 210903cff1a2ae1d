"""Run a trained detector or segmentor on images; save painted pictures and JSON predictions.

    python tools/infer.py CONFIG CHECKPOINT IMAGE_OR_DIR [IMAGE_OR_DIR ...] [--out-dir work_dirs/infer]
        [--device cpu] [--amp | --int8 --calib DIR] [--score-thr 0.3] [--opacity 0.5] [--cfg-options k=v ...]

Writes, per image NAME:
* ``OUT_DIR/vis/NAME.jpg``: the picture with the predictions painted by mmdet's ``DetLocalVisualizer`` (boxes,
  masks and class names of instances scoring above ``--score-thr``) or mmseg's ``SegLocalVisualizer`` (the
  segmentation overlaid with ``--opacity``, class names on the regions), and below it a legend of the classes
  present (colour, name, and the instance count or the share of pixels);
* ``OUT_DIR/preds/NAME.json``: detection: every predicted instance (``label``, ``class``, ``score``, ``bbox`` as
  ``[x1, y1, x2, y2]`` in pixels of the input image, ``mask`` as COCO RLE); segmentation: the classes present
  with their pixel counts, plus ``OUT_DIR/preds/NAME.png``, the label map (class index per pixel).

The checkpoint is loaded strictly (every key must match). Class names come from the checkpoint's meta data when it
has them (checkpoints saved by tools/train.py do), else from the config's test data set (COCO / ADE20K classes).
``--amp`` runs the backbone, neck and dense heads in bfloat16 autocast (float16 on GPUs without bfloat16); boxes,
masks and segmentation logits come back in float32 (refused on CPUs without native bfloat16).
``--int8 --calib DIR`` (segmentors, CPU, needs torchao): the backbone, neck and decode head quantized to int8 after
calibration on the images of DIR, compiled once per input size (minutes each): see ``mmswin.apis.quantize``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import os.path as osp
import sys
from typing import Any

import numpy as np
from mmengine.config import DictAction

from mmswin.apis import ToolError, add_debug_argument, inference_dtype, init_model, load_config
from mmswin.apis.errors import run_tool
from mmswin.engine import mixed_precision, setup_runtime
from mmswin.engine.precision import describe_precision

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def list_images(paths: list[str]) -> list[str]:
    """Files as given, directories expanded to their image files (sorted, not recursive)."""
    images = []
    for path in paths:
        if osp.isdir(path):
            images += sorted(osp.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif osp.isfile(path):
            images.append(path)
        else:
            raise ToolError(f'image not found: {path}')
    if not images:
        raise ToolError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in {", ".join(paths)}')
    return images


def load_model(config: str, checkpoint: str, device: str, cfg_options: dict | None) -> Any:
    """The model of ``config`` with ``checkpoint`` loaded strictly, in eval mode, ``dataset_meta`` set."""
    from mmengine.registry import init_default_scope
    cfg = load_config(config, cfg_options, drop_pretrained=True)  # the checkpoint holds every weight
    model = init_model(cfg, checkpoint, device)
    init_default_scope(cfg.default_scope)
    return model


def _det_record(sample: Any, classes: list[str]) -> list[dict[str, Any]]:
    import pycocotools.mask as mask_utils
    inst = sample.pred_instances.cpu()
    masks = inst.masks.numpy().astype(np.uint8) if 'masks' in inst else None
    records = []
    for i in range(len(inst)):
        label = int(inst.labels[i])
        rec = dict(label=label, **{'class': classes[label] if label < len(classes) else str(label)},
                   score=round(float(inst.scores[i]), 5),
                   bbox=[round(float(v), 2) for v in inst.bboxes[i].tolist()])
        if masks is not None:
            rle = mask_utils.encode(np.asfortranarray(masks[i]))
            rec['mask'] = dict(size=[int(s) for s in rle['size']], counts=rle['counts'].decode('ascii'))
        records.append(rec)
    return records


def _seg_record(sample: Any, classes: list[str], png_path: str) -> dict[str, Any]:
    import mmcv
    labels = sample.pred_sem_seg.data[0].cpu().numpy()
    mmcv.imwrite(labels.astype(np.uint8 if labels.max(initial=0) < 256 else np.uint16), png_path)
    ids, counts = np.unique(labels, return_counts=True)
    total = int(labels.size)
    present = [dict(label=int(i), **{'class': classes[i] if i < len(classes) else str(int(i))},
                    pixels=int(c), fraction=round(int(c) / total, 5)) for i, c in zip(ids, counts)]
    present.sort(key=lambda r: -r['pixels'])
    return dict(label_map=png_path, classes_present=present)


def predict(model: Any, images: list[str], out_dir: str, score_thr: float = 0.3,
            opacity: float = 0.5) -> list[dict[str, Any]]:
    """Predict each image; write the painted picture and the JSON (see the module doc). Returns the JSON records."""
    import mmcv

    from mmswin.apis.pictures import add_legend, build_painter, det_colors, det_legend, paint, seg_legend
    scope = model.cfg.default_scope
    if scope == 'mmdet':
        from mmdet.apis import inference_detector as infer
    else:
        from mmseg.apis import inference_model as infer

    overrides = dict(alpha=opacity) if scope == 'mmseg' else {}
    visualizer = build_painter(model.cfg.visualizer, model.dataset_meta, f'mmswin_infer_{id(model)}', **overrides)
    classes = list(model.dataset_meta.get('classes', []))
    colors = det_colors(visualizer, len(classes)) if scope == 'mmdet' else model.dataset_meta['palette']

    os.makedirs(osp.join(out_dir, 'vis'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'preds'), exist_ok=True)
    records = []
    for path in images:
        name = osp.splitext(osp.basename(path))[0]
        sample = infer(model, path)
        image = mmcv.imconvert(mmcv.imread(path), 'bgr', 'rgb')
        picture = paint(visualizer, image, sample, draw_gt=False, score_thr=score_thr)
        if scope == 'mmdet':
            inst = sample.pred_instances
            legend = det_legend(inst.labels[inst.scores > score_thr].tolist(), classes, colors)
        else:
            legend = seg_legend(sample.pred_sem_seg.data[0].cpu().numpy(), classes, colors)
        vis_file = osp.join(out_dir, 'vis', f'{name}.jpg')
        mmcv.imwrite(mmcv.rgb2bgr(add_legend(picture, legend)), vis_file)
        record: dict[str, Any] = dict(image=path, height=int(image.shape[0]), width=int(image.shape[1]),
                                      visualization=vis_file)
        if scope == 'mmdet':
            record['instances'] = _det_record(sample, classes)
        else:
            record.update(_seg_record(sample, classes, osp.join(out_dir, 'preds', f'{name}.png')))
        with open(osp.join(out_dir, 'preds', f'{name}.json'), 'w') as f:
            json.dump(record, f, indent=1)
        records.append(record)
    return records


def check_int8_arguments(args: argparse.Namespace, device: str) -> list[str]:
    """The calibration images of ``--int8`` (``[]`` without it); refuses what cannot run, before any loading."""
    if not args.int8:
        if args.calib:
            raise ToolError('--calib is for --int8: add --int8, or drop --calib')
        return []
    if args.amp:
        raise ToolError('--int8 and --amp are two precisions: choose one')
    if not args.calib:
        raise ToolError('--int8 needs --calib DIR: a few images like the ones to predict, to set the int8 ranges')
    from mmswin.apis.quantize import require_int8
    require_int8(device)
    return list_images([args.calib])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Predict images with an mmswin detector or segmentor')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='trained checkpoint')
    parser.add_argument('images', nargs='+', help='image files or directories of images')
    parser.add_argument('--out-dir', default='work_dirs/infer', help='where vis/ and preds/ are written')
    parser.add_argument('--device', default=None, help='cuda:0 or cpu (default: cuda:0 when available)')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision: bfloat16 autocast of the backbone, neck and dense heads (float16 on '
                        'GPUs without bfloat16), outputs in float32; refused on CPUs without native bfloat16')
    parser.add_argument('--int8', action='store_true',
                        help='segmentors on the CPU: int8 inference (static post-training quantization, torchao; '
                        'calibrated on --calib, one compile per input size)')
    parser.add_argument('--calib', metavar='DIR', help='with --int8: a directory (or image) of a few calibration '
                        'images like the ones to predict')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='detection: paint instances scoring above this (the JSON keeps all)')
    parser.add_argument('--opacity', type=float, default=0.5, help='segmentation: opacity of the overlay')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    add_debug_argument(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    setup_runtime()
    args = parse_args(argv)
    import torch
    device = args.device or ('cuda:0' if torch.cuda.is_available() else 'cpu')
    calib = check_int8_arguments(args, device)
    dtype = inference_dtype(device) if args.amp else None  # a CPU without bfloat16 stops here
    images = list_images(args.images)
    model = load_model(args.config, args.checkpoint, device, args.cfg_options)
    if calib:
        from mmswin.apis.quantize import use_int8
        use_int8(model, calib)
    device_type = device.split(':')[0]
    if dtype is not None:
        print(f'mixed precision: {describe_precision(device_type, dtype)} for the backbone, neck and dense heads')
    with mixed_precision(model, device_type, dtype) if dtype else contextlib.nullcontext():
        records = predict(model, images, args.out_dir, args.score_thr, args.opacity)
    print(f'{len(records)} image(s): pictures in {osp.join(args.out_dir, "vis")}, '
          f'predictions in {osp.join(args.out_dir, "preds")}')
    return records


if __name__ == '__main__':
    sys.exit(run_tool(main))
