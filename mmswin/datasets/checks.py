"""Checks of the files a data set refers to, with errors that name the file (no mmdet / mmseg imports).

Three levels, from cheap to thorough:

``'exists'``
    every referenced file exists.
``'header'`` (the default of :class:`~mmswin.engine.hooks.DataCheckHook`)
    plus: the image header parses, the file is complete (a JPEG ends with its end-of-image marker, a PNG with its
    IEND chunk; a file failing this is decoded to confirm), a label map has the size of its image, a COCO image has
    the width and height its json states. Reads a few kB per file.
``'decode'``
    plus: every image and label map is decoded completely and the label values are checked against the class
    list. Slow on big data sets (it reads everything once); what the demo uses.

What the training pipelines do without these checks: a truncated JPEG decodes with grey rows and a warning on
stderr only (OpenCV), a label map of half the image size is resized along with the image and trains on shifted
labels, a missing label map fails deep inside a worker; all named here before the first iteration instead.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from mmswin.datasets.wrappers import leaf_datasets

__all__ = ['DataCheckError', 'CHECK_LEVELS', 'image_size', 'check_sample', 'check_samples', 'check_dataset']

CHECK_LEVELS = ('exists', 'header', 'decode')
_EXIF_SWAPS_SIDES = {5, 6, 7, 8}
_JPEG_EOI = b'\xff\xd9'
_PNG_IEND = b'IEND\xaeB`\x82'


class DataCheckError(ValueError):
    """A data set refers to a missing, unreadable or inconsistent file; the message names it."""


@dataclass
class _Image:
    size: tuple[int, int]  # (width, height) as the loaders see it (EXIF orientation applied)
    array: np.ndarray | None = None
    mode: str = ''  # PIL's mode: 'RGB', 'L' (grey), 'RGBA', 'P' (palette), ...


def _looks_complete(path: str, fmt: str | None) -> bool:
    """Cheap end-of-file marker test for JPEG and PNG (other formats: True)."""
    if fmt not in ('JPEG', 'PNG'):
        return True
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read()
    if fmt == 'JPEG':
        return _JPEG_EOI in tail.rstrip(b'\x00')[-4096:]
    return tail.rstrip(b'\x00').endswith(_PNG_IEND)


def image_size(path: str, level: str = 'header', role: str = 'image', keep_array: bool = False,
               source: str = '') -> _Image:
    """Check one image file; returns its size as loaded (EXIF orientation applied) and, if asked, its pixels.

    Raises:
        DataCheckError: missing, unreadable, truncated or (level 'decode') undecodable, naming ``path`` and the
            data set ``source`` that refers to it.
    """
    where = f' (referenced by {source})' if source else ''
    if not os.path.isfile(path):
        raise DataCheckError(f'{role} file not found: {path}{where}')
    if level == 'exists':
        return _Image((-1, -1))
    try:
        with Image.open(path) as img:
            fmt, mode = img.format, img.mode
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1) if fmt == 'JPEG' else 1
            array = None
            if level == 'decode' or not _looks_complete(path, fmt):
                img.load()  # raises on truncated data (PIL's LOAD_TRUNCATED_IMAGES is False by default)
                if keep_array:
                    array = np.asarray(img)
    except UnidentifiedImageError:
        raise DataCheckError(f'{role} file is not a readable image: {path}{where}') from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataCheckError(f'{role} file is corrupt or truncated: {path}{where} ({err})') from None
    if orientation in _EXIF_SWAPS_SIDES and role == 'image':
        width, height = height, width
    return _Image((width, height), array, mode)


# channels of PIL's modes, for the note on images that are not 3-channel colour
_CHANNELS = {'1': 1, 'L': 1, 'P': 1, 'I': 1, 'F': 1, 'I;16': 1, 'LA': 2, 'PA': 2, 'RGB': 3, 'YCbCr': 3, 'LAB': 3,
             'HSV': 3, 'RGBA': 4, 'RGBX': 4, 'CMYK': 4}


def check_sample(info: Mapping, level: str = 'header', *, num_classes: int | None = None,
                 reduce_zero_label: bool = False, source: str = '') -> str:
    """Check one ``data_info`` of an mmseg / mmdet data set (keys ``img_path``, ``seg_map_path``, ``width``...).

    Returns:
        The image's PIL mode (``'RGB'``, ``'L'``, ``'RGBA'`` ...; ``''`` at level ``'exists'``).

    Raises:
        DataCheckError: naming the offending file.
    """
    if level not in CHECK_LEVELS:
        raise ValueError(f'level must be one of {CHECK_LEVELS}, got {level!r}')
    img_path = info.get('img_path')
    if img_path is None:
        return ''
    img = image_size(img_path, level, 'image', source=source)
    if level == 'exists':
        if info.get('seg_map_path'):
            image_size(info['seg_map_path'], level, 'label map', source=source)
        return ''
    width, height = info.get('width'), info.get('height')
    if width is not None and height is not None and (int(width), int(height)) != img.size:
        raise DataCheckError(f'image {img_path} is {img.size[0]}x{img.size[1]} but its annotation '
                             f'({source or "data set"}) says {width}x{height}: the annotation belongs to another '
                             'image or the image was replaced')
    seg_path = info.get('seg_map_path')
    if seg_path:
        seg = image_size(seg_path, level, 'label map', keep_array=level == 'decode', source=source)
        if seg.size != img.size:
            raise DataCheckError(f'label map {seg_path} is {seg.size[0]}x{seg.size[1]} but its image {img_path} is '
                                 f'{img.size[0]}x{img.size[1]}')
        if seg.array is not None and num_classes is not None and not info.get('label_map'):
            values = np.unique(seg.array)
            if seg.array.ndim != 2:
                raise DataCheckError(f'label map {seg_path} has {seg.array.shape[2]} channels; expected one channel '
                                     'of class indices')
            allowed = set(range(1, num_classes + 1) if reduce_zero_label else range(num_classes)) | {255}
            if reduce_zero_label:
                allowed.add(0)
            bad = sorted(set(values.tolist()) - allowed)
            if bad:
                expect = (f'0 (ignore) and 1..{num_classes} (reduce_zero_label=True)' if reduce_zero_label
                          else f'0..{num_classes - 1}')
                raise DataCheckError(f'label map {seg_path} holds values {bad[:10]} outside {expect} and 255 '
                                     f'for {num_classes} classes')
    return img.mode


def check_samples(infos: Iterable[Mapping], level: str = 'header', *, num_classes: int | None = None,
                  reduce_zero_label: bool = False, source: str = '',
                  not_rgb: list[tuple[str, str]] | None = None) -> int:
    """:func:`check_sample` for each; returns how many were checked. Stops at the first error.

    Args:
        not_rgb: when given, ``(path, mode)`` of every image that is not 3-channel colour is appended to it.
    """
    count = 0
    for info in infos:
        mode = check_sample(info, level, num_classes=num_classes, reduce_zero_label=reduce_zero_label,
                            source=source)
        if not_rgb is not None and mode and _CHANNELS.get(mode, 3) != 3:
            not_rgb.append((info['img_path'], mode))
        count += 1
    return count


def _color_type(dataset) -> str:
    """The ``color_type`` the data set's ``LoadImageFromFile`` reads images with (mmcv's default ``'color'``)."""
    for transform in getattr(getattr(dataset, 'pipeline', None), 'transforms', []):
        if hasattr(transform, 'color_type'):
            return transform.color_type
    return 'color'


def check_dataset(dataset, level: str = 'header', logger=None, split: str = '') -> int:
    """Check every sample of an mmengine data set (wrappers unwrapped); returns the number checked.

    Images that are not 3-channel colour (grey, grey + alpha, RGBA, CMYK, palette): with the pipeline's
    ``LoadImageFromFile(color_type='color')`` (mmcv's default) they are **converted** to 3 channels when loaded
    (grey replicated, alpha dropped, palette resolved), which is logged once per data set with the first files;
    with ``color_type='unchanged'`` they would reach a 3-channel model as they are, so they are **refused**.

    Raises:
        DataCheckError: a bad file (see :func:`check_sample`), or non-RGB images with ``color_type='unchanged'``.
    """
    total = 0
    for leaf in leaf_datasets(dataset):
        if hasattr(leaf, 'full_init'):
            leaf.full_init()
        if not hasattr(leaf, 'get_data_info'):
            continue
        meta = getattr(leaf, 'metainfo', {}) or {}
        classes = meta.get('classes')
        source = getattr(leaf, 'ann_file', '') or getattr(leaf, 'data_prefix', {}).get('img_path', '')
        source = f'{type(leaf).__name__} {split} set {source}'.strip()
        not_rgb: list[tuple[str, str]] = []
        total += check_samples((leaf.get_data_info(i) for i in range(len(leaf))), level,
                               num_classes=len(classes) if classes and hasattr(leaf, 'reduce_zero_label') else None,
                               reduce_zero_label=bool(getattr(leaf, 'reduce_zero_label', False)), source=source,
                               not_rgb=not_rgb)
        if not_rgb:
            examples = ', '.join(f'{path} ({mode})' for path, mode in not_rgb[:3])
            color_type = _color_type(leaf)
            if color_type == 'unchanged':
                raise DataCheckError(
                    f'{len(not_rgb)} images of {source} are not 3-channel colour (e.g. {examples}) and the pipeline '
                    "loads them unchanged (LoadImageFromFile color_type='unchanged'): the model takes 3 channels. "
                    "Convert the files, or load with color_type='color' (grey replicated, alpha dropped).")
            if logger is not None:
                logger.warning(f'DataCheckHook: {len(not_rgb)} images of {source} are not 3-channel colour (e.g. '
                               f"{examples}); LoadImageFromFile(color_type={color_type!r}) converts them to 3 "
                               'channels when loading (grey replicated, alpha dropped, palette resolved)')
    if logger is not None:
        logger.info(f'DataCheckHook: {total} {split} samples checked (level {level!r}), all files fine')
    return total
