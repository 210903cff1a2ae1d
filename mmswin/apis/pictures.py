"""Pictures that explain themselves: ground truth beside prediction under titles, and a legend of the classes.

The drawing itself is mmdet's ``DetLocalVisualizer`` / mmseg's ``SegLocalVisualizer`` (boxes, masks, class regions
and names); this module adds the words around it -- a white band of titles above a picture, one title per equal
part (``ground truth | prediction``), and a legend band below (a colour swatch and a class name per class present,
in the colours the visualizer painted). Pictures are ``(H, W, 3)`` uint8 RGB arrays, as the visualizers return them.
Used by ``tools/run_demo.py`` (overlays) and ``tools/infer.py`` (legend).
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK = (0, 0, 0)
LegendEntry = tuple[str, tuple[int, int, int]]


def _text_size(width: int) -> tuple[float, int, int]:
    """Font scale, stroke thickness and line height (pixels) for text across ``width`` pixels."""
    scale = float(np.clip(width / 750, 0.45, 1.0))
    thickness = 1 if scale < 0.8 else 2
    (_, h), baseline = cv2.getTextSize('Ag', FONT, scale, thickness)
    return scale, thickness, h + baseline + max(6, h // 2)


def _fit(text: str, max_width: int, scale: float, thickness: int) -> str:
    """``text`` cut with an ellipsis so that it fits in ``max_width`` pixels."""
    if cv2.getTextSize(text, FONT, scale, thickness)[0][0] <= max_width:
        return text
    while len(text) > 1 and cv2.getTextSize(text + '...', FONT, scale, thickness)[0][0] > max_width:
        text = text[:-1]
    return text + '...'


def add_titles(picture: np.ndarray, titles: Sequence[str]) -> np.ndarray:
    """``(H, W, 3)`` -> ``(H + band, W, 3)``: a white band above, ``titles[i]`` over the i-th of the equal parts."""
    width = picture.shape[1]
    part = width // max(len(titles), 1)
    scale, thickness, line = _text_size(part)
    band = np.full((line, width, 3), 255, dtype=np.uint8)
    margin = max(4, line // 4)
    for i, title in enumerate(titles):
        text = _fit(title, part - 2 * margin, scale, thickness)
        cv2.putText(band, text, (i * part + margin, line - margin - 2), FONT, scale, BLACK, thickness, cv2.LINE_AA)
    return np.concatenate([band, picture.astype(np.uint8)], axis=0)


def add_legend(picture: np.ndarray, entries: Sequence[LegendEntry]) -> np.ndarray:
    """``(H, W, 3)`` -> ``(H + rows * line, W, 3)``: a colour swatch and a name per entry, in rows below.

    No entries: the band says ``nothing predicted``.
    """
    width = picture.shape[1]
    scale, thickness, line = _text_size(min(width, 1000))
    margin = max(4, line // 4)
    swatch = line - 2 * margin
    items = [(_fit(name, width - 3 * margin - swatch, scale, thickness), tuple(int(c) for c in color))
             for name, color in entries] or [('nothing predicted', None)]
    rows: list[list[tuple[int, str, Any]]] = [[]]
    x = margin
    for name, color in items:
        item_width = (swatch + margin if color is not None else 0) + cv2.getTextSize(
            name, FONT, scale, thickness)[0][0] + 2 * margin
        if rows[-1] and x + item_width > width:
            rows.append([])
            x = margin
        rows[-1].append((x, name, color))
        x += item_width
    band = np.full((line * len(rows), width, 3), 255, dtype=np.uint8)
    for r, row in enumerate(rows):
        top = r * line
        for x, name, color in row:
            if color is not None:
                cv2.rectangle(band, (x, top + margin), (x + swatch, top + margin + swatch), color, -1)
                cv2.rectangle(band, (x, top + margin), (x + swatch, top + margin + swatch), BLACK, 1)
                x += swatch + margin
            cv2.putText(band, name, (x, top + line - margin - 2), FONT, scale, BLACK, thickness, cv2.LINE_AA)
    return np.concatenate([picture.astype(np.uint8), band], axis=0)


def segmentation_scores(gt: Any, pred: Any, ignore_index: int = 255) -> tuple[float, float] | None:
    """One image's ``(mIoU, pixel accuracy)`` over its labelled pixels (gt != ignore_index), in [0, 1], by mmseg's
    ``IoUMetric.intersect_and_union``.

    The mean runs over the classes present in the ground truth or the prediction of those pixels; ``None`` when no
    pixel is labelled. ``gt``, ``pred``: ``(H, W)`` class indices (arrays or tensors).
    """
    import torch
    from mmseg.evaluation.metrics import IoUMetric
    gt, pred = torch.as_tensor(np.asarray(gt)), torch.as_tensor(np.asarray(pred))
    if gt.shape != pred.shape:
        raise ValueError(f'ground truth {tuple(gt.shape)} and prediction {tuple(pred.shape)} differ in size')
    labelled = gt != ignore_index
    if not labelled.any():
        return None
    num_classes = int(max(gt[labelled].max(), pred[labelled].max())) + 1
    intersect, union, _, area_gt = IoUMetric.intersect_and_union(pred, gt, num_classes, ignore_index)
    present = union > 0
    return float((intersect[present] / union[present]).mean()), float(intersect.sum() / area_gt.sum())


def seg_legend(label_map: np.ndarray, classes: Sequence[str], palette: Sequence) -> list[LegendEntry]:
    """The classes of an ``(H, W)`` label map, most pixels first, with their share and palette colour."""
    ids, counts = np.unique(np.asarray(label_map), return_counts=True)
    order = np.argsort(-counts, kind='stable')
    total = counts.sum()
    return [(f'{classes[i]} {100 * counts[k] / total:.0f}%', tuple(palette[i]))
            for k in order for i in [int(ids[k])] if i < len(classes)]


def det_legend(labels: Sequence[int], classes: Sequence[str], colors: Sequence) -> list[LegendEntry]:
    """The classes of the painted instances (``labels``), most instances first, with their count and colour."""
    counts = Counter(int(label) for label in labels)
    return [(f'{classes[i] if i < len(classes) else i} x{n}', tuple(colors[i])) for i, n in counts.most_common()]


def det_colors(visualizer: Any, num_labels: int) -> list[tuple[int, int, int]]:
    """The box colour per label that mmdet's ``DetLocalVisualizer`` paints with (its ``bbox_color`` or palette)."""
    from mmdet.visualization.palette import get_palette
    color = visualizer.bbox_color if visualizer.bbox_color is not None else visualizer.dataset_meta.get('palette')
    return [tuple(int(c) for c in rgb) for rgb in get_palette(color, max(num_labels, 1))]


def build_painter(visualizer_cfg: dict, dataset_meta: dict, name: str, **overrides) -> Any:
    """A visualizer built from a config's ``visualizer`` dict that writes nowhere by itself (no backends)."""
    from mmengine.registry import VISUALIZERS
    cfg = dict(visualizer_cfg)
    cfg.update(name=name, vis_backends=None, save_dir=None, **overrides)
    visualizer = VISUALIZERS.build(cfg)
    visualizer.dataset_meta = dataset_meta
    return visualizer


def paint(visualizer: Any, image: np.ndarray, sample: Any, draw_gt: bool, score_thr: float = 0.3) -> np.ndarray:
    """The visualizer's picture of ``sample`` on ``image`` (RGB): ``gt | prediction`` side by side if ``draw_gt``.

    Detection paints the instances scoring above ``score_thr`` (mmdet's rule: strictly above). Both visualizers hand
    the finished picture to ``add_image`` when given no ``out_file`` (mmseg's does not keep it as its image), so it
    is taken there.
    """
    pictures: list[np.ndarray] = []
    visualizer.add_image = lambda name, picture, step=0: pictures.append(picture)
    try:
        kwargs = dict(pred_score_thr=score_thr) if 'pred_instances' in sample else {}
        visualizer.add_datasample('picture', image, data_sample=sample, draw_gt=draw_gt, draw_pred=True,
                                  show=False, **kwargs)
    finally:
        del visualizer.add_image
    return pictures[-1]


def comparison_titles(sample: Any, name: str, score_thr: float = 0.3, ignore_index: int = 255) -> list[str]:
    """The two titles over a ``ground truth | prediction`` picture of a test-step ``sample``.

    Segmentation: the image name, then the image's mIoU and pixel accuracy; detection: the number of ground-truth
    objects, then how many predictions are painted (scoring above ``score_thr``) out of all.
    """
    if 'pred_sem_seg' in sample:
        scores = segmentation_scores(sample.gt_sem_seg.data[0].cpu(), sample.pred_sem_seg.data[0].cpu(),
                                     ignore_index)
        pred = ('prediction: no labelled pixel to score' if scores is None else
                f'prediction: mIoU {100 * scores[0]:.1f}, pixel acc. {100 * scores[1]:.1f}%')
        return [f'ground truth: {name}', pred]
    n_gt = len(sample.gt_instances) if 'gt_instances' in sample else 0
    scores = sample.pred_instances.scores
    shown = int((scores > score_thr).sum())
    return [f'ground truth: {name}, {n_gt} objects',
            f'prediction: {shown} of {len(scores)} scoring > {score_thr:g}']
