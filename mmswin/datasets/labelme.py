"""Conversion of a labelme export into the ADE20K directory layout (mmseg) and / or the COCO layout (mmdet).

Three kinds of input are recognised (:func:`convert` ``input_format='auto'``, the command line's
``--input-format auto``, picks by content):

``labelme``
    A folder of labelme annotation files (``*.json`` with ``shapes``), as the labelme tool writes them. The image
    is read as labelme reads it: the embedded ``imageData`` (base64, pixels as stored) when there is one, whatever
    ``imagePath`` says (old files carry stale ones); otherwise ``imagePath`` relative to the json's folder, Windows
    (backslash) separators accepted, EXIF rotation applied. Gives both outputs. Polygons,
    rectangles, circles and ``mask`` shapes are areas; lines and points are skipped with a warning. Shapes with the
    same ``label`` and ``group_id`` form one instance (as in labelme's own ``labelme2coco.py``).
``voc``
    A labelme ``labelme2voc.py`` export (``JPEGImages/``, ``SegmentationClass/*.png`` with class indices, 255 =
    ignore, ``class_names.txt``). Gives the semantic-segmentation output.
``coco``
    A labelme ``labelme2coco.py`` export (``annotations.json`` and its images). Gives the COCO output. Its image,
    annotation and category ids start at 0, which ``pycocotools.COCOeval`` mishandles (id 0 reads as "no match"):
    every id kind is shifted to start at 1, and the ``_background_`` / ``__ignore__`` categories are dropped.

Class list: labelme's ``labels.txt`` convention (``--labels``; first line ``__ignore__``, then ``_background_``, then
the classes). Without it the classes are ``background`` plus the sorted labels found. ``_background_`` is written as
``background``; pixels no shape covers are background, as in labelme's VOC export.

Outputs (all images of a split are copied, JPEG bytes -- files or embedded -- unchanged unless an EXIF rotation has
to be applied; other formats are written as JPEG, quality 95, as the layouts name ``<stem>.jpg``):

* ``--seg-out DIR``: ``images/{training,validation}/<stem>.jpg`` and ``annotations/{training,validation}/<stem>.png``
  as in ADE20K: single-channel PNG, 0 = unlabelled / ignored, class ``k`` of the class list stored as ``k + 1``. Read
  it with ``reduce_zero_label=True`` (the default of mmseg's ``ADE20KDataset``), which maps 0 to 255 (ignored) and
  ``k + 1`` back to ``k``. ``DIR/meta.json`` holds the class list and palette for the config's ``metainfo``.
* ``--coco-out DIR``: ``train2017/``, ``val2017/``, ``annotations/instances_{train,val}2017.json`` (the names of
  mmdet's stock COCO config, so only ``data_root`` and ``metainfo`` change), plus ``DIR/meta.json``.

Splits: ``--val-ratio`` (default 0.2, every n-th image in name order, at least one), ``--val-images a,b`` or
``--val-equals-train`` (every image in both splits; for tiny demo sets where a held-out image says nothing).

The command line is ``tools/dataset_converters/labelme2mmswin.py``. numpy and PIL only (no torch).
"""
from __future__ import annotations

import base64
import io
import json
import math
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

__all__ = ['ConversionError', 'LabelmeSample', 'voc_palette', 'read_label_file', 'load_labelme_dir',
           'rasterize_shape', 'semantic_map', 'instances_of', 'convert', 'fix_coco_ids', 'read_meta']

IGNORE_LABEL = '__ignore__'
BACKGROUND_LABEL = '_background_'
SEG_SPLITS = {'train': 'training', 'val': 'validation'}
COCO_SPLITS = {'train': 'train2017', 'val': 'val2017'}
AREA_SHAPES = ('polygon', 'rectangle', 'circle', 'mask', 'oriented_rectangle')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


class ConversionError(ValueError):
    """The export cannot be converted; the message names the file and what is wrong with it."""


def voc_palette(n: int) -> list[list[int]]:
    """The PASCAL VOC colour map (labelme / imgviz use the same), ``n`` RGB triples."""
    palette = []
    for index in range(n):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette.append([r, g, b])
    return palette


def read_label_file(path: str | Path) -> list[str]:
    """Class names from a labelme ``labels.txt`` / ``class_names.txt`` (``__ignore__`` dropped).

    ``_background_`` becomes ``background``; the order is the class index order.
    """
    names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    classes = ['background' if n == BACKGROUND_LABEL else n for n in names if n != IGNORE_LABEL]
    if len(set(classes)) != len(classes):
        raise ConversionError(f'{path}: duplicate class names in {classes}')
    return classes


# ----------------------------------------------------------------------------------------------- labelme json


@dataclass
class LabelmeSample:
    """One annotated image of a labelme folder."""
    stem: str
    json_path: Path
    image: Image.Image  # RGB, as labelme shows it (EXIF orientation applied to image files)
    image_path: Path | None  # the original file when it can be copied byte for byte
    shapes: list[dict] = field(default_factory=list)
    image_data: bytes | None = None  # the embedded JPEG when it can be written byte for byte

    @property
    def original(self) -> Path | bytes | None:
        """What ``_write_image`` can write unchanged: the image file, the embedded JPEG bytes, or None."""
        return self.image_path if self.image_path is not None else self.image_data


def _open_image(path: Path) -> tuple[Image.Image, bool]:
    """Decode completely (a truncated or corrupt file raises); returns (RGB image, rotated by EXIF)."""
    try:
        with Image.open(path) as img:
            img.load()
            rotated = ImageOps.exif_transpose(img)
            was_rotated = rotated.size != img.size or img.getexif().get(0x0112, 1) != 1
            return rotated.convert('RGB'), was_rotated
    except (OSError, SyntaxError, ValueError) as err:
        raise ConversionError(f'{path}: not a readable image ({err})') from None


def _decode_image_data(json_path: Path, image_data: object) -> tuple[Image.Image, bytes | None]:
    """The embedded ``imageData`` as labelme reads it (``utils.img_b64_to_arr``: base64, pixels as stored).

    Returns (RGB image, the decoded bytes when they are a JPEG without EXIF rotation, to be written unchanged).
    """
    if not isinstance(image_data, str):
        raise ConversionError(f'{json_path}: "imageData" must be a base64 string or null, got '
                              f'{type(image_data).__name__}; re-save the file in labelme')
    raw = b''
    try:
        raw = base64.b64decode(image_data)  # not validate=True: labelme skips stray characters too
        with Image.open(io.BytesIO(raw)) as img:
            img.load()  # a truncated image raises here, not later
            verbatim = img.format in ('JPEG', 'MPO') and img.getexif().get(0x0112, 1) == 1
            image = img.convert('RGB')
    except (OSError, SyntaxError, ValueError) as err:  # binascii.Error (bad base64) is a ValueError
        why = (f'its {len(raw)} decoded bytes are in no image format PIL reads'
               if isinstance(err, UnidentifiedImageError) else str(err))
        raise ConversionError(f'{json_path}: the embedded "imageData" is not a base64-encoded image ({why}); '
                              're-save the file in labelme, or set "imageData" to null to read the image file '
                              'named by "imagePath"') from None
    return image, raw if verbatim else None


def _image_file_of(json_path: Path, image_path: object) -> Path:
    """``imagePath`` resolved as labelme does: ``\\`` or ``/`` separators, relative to the json's folder."""
    if not isinstance(image_path, str) or not image_path:
        raise ConversionError(f'{json_path}: embeds no "imageData" and names no "imagePath" (got {image_path!r}); '
                              're-save the file in labelme with its image')
    relative = PureWindowsPath(image_path)
    resolved = json_path.parent / relative.as_posix()
    if not resolved.is_file():
        hint = 'put the image there or correct "imagePath" in the json'
        beside = json_path.parent / relative.name
        if relative.name and beside != resolved and beside.is_file():
            hint = f'if {beside} is this image, set "imagePath": "{relative.name}"'
        raise ConversionError(f'{json_path}: image "{image_path}" does not exist (looked for {resolved}, relative '
                              f'to the json\'s folder) and the file embeds no imageData; {hint}')
    if resolved.resolve() == json_path.resolve():
        raise ConversionError(f'{json_path}: "imagePath" names this json file itself and the file embeds no '
                              'imageData; set "imagePath" to the file name of its image')
    return resolved


def load_labelme_dir(folder: Path) -> list[LabelmeSample]:
    """Read every labelme ``*.json`` of ``folder`` with its image (checked, decoded) as labelme reads it.

    The embedded ``imageData`` comes first; only when it is empty or null is ``imagePath`` read.
    """
    samples = []
    for json_path in sorted(folder.glob('*.json')):
        try:
            data = json.loads(json_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ConversionError(f'{json_path}: not a readable labelme json ({err})') from None
        if not isinstance(data, dict) or 'shapes' not in data:
            raise ConversionError(f'{json_path}: no "shapes" key, not a labelme annotation file')
        source: Path | None = None
        embedded: bytes | None = None
        if data.get('imageData'):
            image, embedded = _decode_image_data(json_path, data['imageData'])
            origin = 'its embedded imageData'
        else:
            image_path = _image_file_of(json_path, data.get('imagePath'))
            try:
                image, rotated = _open_image(image_path)
            except ConversionError as err:
                raise ConversionError(f'{json_path}: {err}') from None
            source = None if rotated or image_path.suffix.lower() not in ('.jpg', '.jpeg') else image_path
            origin = str(image_path)
        h, w = data.get('imageHeight'), data.get('imageWidth')
        if (h, w) != (None, None) and (h, w) != (image.height, image.width):
            raise ConversionError(f'{json_path}: says the image is {w}x{h} but {origin} is '
                                  f'{image.width}x{image.height}; the annotation does not belong to this image')
        samples.append(LabelmeSample(json_path.stem, json_path, image, source, list(data['shapes']), embedded))
    if not samples:
        raise ConversionError(f'{folder}: no labelme *.json files')
    return samples


def rasterize_shape(shape: dict, size: tuple[int, int], where: str = '') -> np.ndarray | None:
    """The boolean mask (H, W) of an area shape, as labelme draws it; None (with a warning) for lines / points."""
    w, h = size
    kind = shape.get('shape_type') or 'polygon'
    points = [tuple(map(float, p)) for p in shape.get('points', [])]
    if kind not in AREA_SHAPES:
        warnings.warn(f'{where}: skipped a {kind!r} shape labelled {shape.get("label")!r}: it has no area',
                      stacklevel=2)
        return None
    if kind == 'mask':
        if len(points) != 2 or not shape.get('mask'):
            raise ConversionError(f'{where}: mask shape needs 2 points and a "mask" PNG')
        part = np.array(Image.open(io.BytesIO(base64.b64decode(shape['mask']))).convert('L')) > 0
        (x1, y1), _ = np.asarray(points).astype(int)
        out = np.zeros((h, w), dtype=bool)
        ph, pw = part[: h - y1, : w - x1].shape
        out[y1:y1 + ph, x1:x1 + pw] = part[:ph, :pw]
        return out
    canvas = Image.new('L', (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    if kind == 'circle':
        if len(points) != 2:
            raise ConversionError(f'{where}: circle needs 2 points, got {len(points)}')
        (cx, cy), (px, py) = points
        d = math.hypot(cx - px, cy - py)
        draw.ellipse(((cx - d, cy - d), (cx + d, cy + d)), outline=1, fill=1)
    elif kind == 'rectangle':
        if len(points) != 2:
            raise ConversionError(f'{where}: rectangle needs 2 points, got {len(points)}')
        (x0, y0), (x1, y1) = points
        draw.rectangle(((min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))), outline=1, fill=1)
    else:
        if len(points) < 3:
            raise ConversionError(f'{where}: polygon needs at least 3 points, got {len(points)}')
        draw.polygon(points, outline=1, fill=1)
    return np.array(canvas, dtype=bool)


def _class_index(label: str, classes: Sequence[str], where: str) -> int | None:
    """Index of a shape label in the class list; None for ``__ignore__``."""
    if label == IGNORE_LABEL:
        return None
    name = 'background' if label == BACKGROUND_LABEL else label
    if name not in classes:
        raise ConversionError(f'{where}: label {label!r} is not in the class list {list(classes)} '
                              '(add it to --labels)')
    return classes.index(name)


def semantic_map(sample: LabelmeSample, classes: Sequence[str]) -> np.ndarray:
    """ADE20K-style label map: 0 = ignore, ``k + 1`` = class k; uncovered pixels are class 0 (background)."""
    if classes[0] != 'background':
        raise ConversionError('the first class must be background (labelme\'s _background_)')
    label = np.ones((sample.image.height, sample.image.width), dtype=np.uint8)  # background -> 0 + 1
    if len(classes) > 254:
        raise ConversionError(f'{len(classes)} classes do not fit an 8-bit label map')
    for shape in sample.shapes:
        mask = rasterize_shape(shape, sample.image.size, str(sample.json_path))
        if mask is None:
            continue
        index = _class_index(shape['label'], classes, str(sample.json_path))
        label[mask] = 0 if index is None else index + 1
    return label


def instances_of(sample: LabelmeSample, classes: Sequence[str]) -> list[tuple[int, np.ndarray, list[list[float]]]]:
    """(class index, mask, COCO polygons) per instance; shapes sharing label and group_id are one instance."""
    grouped: dict[tuple, tuple[int, np.ndarray, list]] = {}
    for number, shape in enumerate(sample.shapes):
        index = _class_index(shape['label'], classes, str(sample.json_path))
        if index is None or classes[index] == 'background':
            continue
        mask = rasterize_shape(shape, sample.image.size, str(sample.json_path))
        if mask is None:
            continue
        group = shape.get('group_id')
        key = (shape['label'], number if group is None else f'group{group}')
        kind = shape.get('shape_type') or 'polygon'
        pts = [tuple(map(float, p)) for p in shape['points']]
        if kind == 'rectangle':
            (x0, y0), (x1, y1) = pts
            x0, x1 = sorted((x0, x1))
            y0, y1 = sorted((y0, y1))
            poly = [x0, y0, x1, y0, x1, y1, x0, y1]
        elif kind == 'circle':
            (cx, cy), (px, py) = pts
            r = math.hypot(cx - px, cy - py)
            poly = [v for t in range(32) for v in (cx + r * math.cos(2 * math.pi * t / 32),
                                                   cy + r * math.sin(2 * math.pi * t / 32))]
        elif kind == 'mask':
            poly = None  # -> RLE
        else:
            poly = [v for p in pts for v in p]
        if key in grouped:
            _, old_mask, polys = grouped[key]
            grouped[key] = (index, old_mask | mask, polys + [poly])
        else:
            grouped[key] = (index, mask, [poly])
    return list(grouped.values())


def _rle(mask: np.ndarray) -> dict:
    """Uncompressed COCO RLE (column-major run lengths, starting with a run of zeros)."""
    flat = np.asfortranarray(mask).reshape(-1, order='F').astype(np.uint8)
    change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], change])).tolist()
    return {'size': [int(mask.shape[0]), int(mask.shape[1])], 'counts': [int(c) for c in counts]}


# ------------------------------------------------------------------------------------------------- writing


def _split(stems: list[str], val_ratio: float, val_images: Sequence[str] | None,
           val_equals_train: bool) -> dict[str, list[str]]:
    if val_equals_train:
        return {'train': list(stems), 'val': list(stems)}
    if val_images:
        unknown = sorted(set(val_images) - set(stems))
        if unknown:
            raise ConversionError(f'--val-images names images not in the export: {unknown}; known: {stems}')
        val = [s for s in stems if s in set(val_images)]
    elif val_ratio <= 0:
        val = []
    else:
        if not 0 < val_ratio < 1:
            raise ConversionError(f'--val-ratio must be in [0, 1), got {val_ratio}')
        if len(stems) < 2:
            raise ConversionError(f'{len(stems)} image(s) cannot be split; use --val-equals-train')
        step = max(2, round(1 / val_ratio))
        val = stems[step - 1::step] or stems[-1:]
    return {'train': [s for s in stems if s not in val], 'val': val}


def _write_image(dst: Path, image: Image.Image, source: Path | bytes | None) -> None:
    """Write ``source`` (a file or JPEG bytes) unchanged, or ``image`` as a JPEG (quality 95) without source."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, bytes):
        dst.write_bytes(source)
    elif source is not None:
        shutil.copyfile(source, dst)
    else:
        image.save(dst, format='JPEG', quality=95)


def _write_meta(out: Path, classes: Sequence[str], **extra) -> None:
    meta = {'classes': list(classes), 'palette': voc_palette(len(classes)), **extra}
    (out / 'meta.json').write_text(json.dumps(meta, indent=1) + '\n')


def read_meta(data_root: str | Path) -> dict:
    """``DATA_ROOT/meta.json`` as the converter writes it, for a config's ``metainfo``: ``classes`` (a tuple) and
    ``palette`` (one RGB list per class; VOC colours when the file has none).

    Raises:
        DataCheckError: the file is missing, not JSON, or without a non-empty list of class names.
    """
    from mmswin.datasets.checks import DataCheckError
    path = Path(data_root) / 'meta.json'
    how = ('the own-data configs read the class names from the meta.json that '
           'tools/dataset_converters/labelme2mmswin.py writes into its --seg-out / --coco-out folder; set '
           'MMSWIN_DATA=FOLDER to that folder, or write {"classes": ["name", ...]} there yourself')
    if not path.is_file():
        raise DataCheckError(f'{path} not found: {how}')
    try:
        meta = json.loads(path.read_text(encoding='utf-8'))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataCheckError(f'{path} is not JSON ({err}): {how}') from None
    classes = meta.get('classes') if isinstance(meta, dict) else None
    if not (isinstance(classes, list) and classes and all(isinstance(c, str) for c in classes)):
        raise DataCheckError(f'{path} holds no "classes" list of names: {how}')
    palette = meta.get('palette') or voc_palette(len(classes))
    if len(palette) != len(classes) or any(len(c) != 3 for c in palette):
        raise DataCheckError(f'{path}: "palette" must hold one [r, g, b] per class ({len(classes)}), '
                             f'found {len(palette)} entries; {how}')
    return {'classes': tuple(classes), 'palette': [[int(v) for v in c] for c in palette]}


def _check_empty(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ConversionError(f'{out} exists and is not empty; pass --overwrite to replace it')
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def write_seg_from_labelme(samples: list[LabelmeSample], classes: Sequence[str], splits: dict[str, list[str]],
                           out: Path) -> None:
    by_stem = {s.stem: s for s in samples}
    for split, stems in splits.items():
        for stem in stems:
            sample = by_stem[stem]
            _write_image(out / 'images' / SEG_SPLITS[split] / f'{stem}.jpg', sample.image, sample.original)
            ann = out / 'annotations' / SEG_SPLITS[split] / f'{stem}.png'
            ann.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(semantic_map(sample, classes), mode='L').save(ann)
    _write_meta(out, classes, reduce_zero_label=True,
                note='annotation value 0 = ignore, value k+1 = classes[k]; read with reduce_zero_label=True')


def write_coco_from_labelme(samples: list[LabelmeSample], classes: Sequence[str], splits: dict[str, list[str]],
                            out: Path) -> None:
    by_stem = {s.stem: s for s in samples}
    things = [c for c in classes if c != 'background']
    categories = [{'id': i + 1, 'name': name, 'supercategory': 'none'} for i, name in enumerate(things)]
    for split, stems in splits.items():
        images, annotations = [], []
        for image_id, stem in enumerate(stems, start=1):
            sample = by_stem[stem]
            _write_image(out / COCO_SPLITS[split] / f'{stem}.jpg', sample.image, sample.original)
            images.append({'id': image_id, 'file_name': f'{stem}.jpg', 'width': sample.image.width,
                           'height': sample.image.height})
            for index, mask, polys in instances_of(sample, classes):
                ys, xs = np.nonzero(mask)
                if len(xs) == 0:
                    warnings.warn(f'{sample.json_path}: an instance of {classes[index]!r} covers no pixel; skipped',
                                  stacklevel=2)
                    continue
                x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                segmentation = _rle(mask) if any(p is None for p in polys) else polys
                annotations.append({
                    'id': len(annotations) + 1, 'image_id': image_id,
                    'category_id': things.index(classes[index]) + 1, 'segmentation': segmentation,
                    'area': float(mask.sum()), 'bbox': [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    'iscrowd': 0})
        _dump_coco(out / 'annotations' / f'instances_{COCO_SPLITS[split]}.json',
                   {'images': images, 'annotations': annotations, 'categories': categories})
    _write_meta(out, things)


def _dump_coco(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {'info': {'description': 'converted by mmswin labelme2mmswin'}, 'licenses': [], **data}
    path.write_text(json.dumps(data))


# -------------------------------------------------------------------------------------------- labelme exports


def fix_coco_ids(data: dict, source: str = 'annotations') -> dict:
    """Drop background / ignore categories and shift image, annotation and category ids to start at 1.

    COCOeval treats id 0 as "unmatched", so a json whose ids start at 0 (labelme's ``labelme2coco.py`` writes
    such) evaluates wrong without an error. Annotations of dropped categories are dropped with a warning.
    """
    data = json.loads(json.dumps(data))  # deep copy
    dropped = {c['id'] for c in data['categories'] if c['name'] in (BACKGROUND_LABEL, IGNORE_LABEL, 'background')}
    data['categories'] = [c for c in data['categories'] if c['id'] not in dropped]
    lost = [a for a in data['annotations'] if a['category_id'] in dropped]
    if lost:
        warnings.warn(f'{source}: dropped {len(lost)} annotations of background / ignore categories', stacklevel=2)
    data['annotations'] = [a for a in data['annotations'] if a['category_id'] not in dropped]
    for kind, refs in (('images', ['image_id']), ('categories', ['category_id']), ('annotations', [])):
        ids = [x['id'] for x in data[kind]]
        if len(set(ids)) != len(ids):
            raise ConversionError(f'{source}: duplicate {kind} ids')
        shift = 1 - min(ids) if ids and min(ids) < 1 else 0
        if shift:
            for x in data[kind]:
                x['id'] += shift
            for ref in refs:
                for a in data['annotations']:
                    a[ref] += shift
    known_images = {im['id'] for im in data['images']}
    orphans = [a['id'] for a in data['annotations'] if a['image_id'] not in known_images]
    if orphans:
        raise ConversionError(f'{source}: annotations {orphans} refer to images not in "images"')
    return data


def _coco_export_file(path: Path) -> Path:
    return path if path.is_file() else path / 'annotations.json'


def convert_coco_export(path: Path, splits_args: dict, out: Path) -> list[str]:
    ann_file = _coco_export_file(path)
    try:
        data = json.loads(ann_file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConversionError(f'{ann_file}: not a readable COCO json ({err})') from None
    data = fix_coco_ids(data, str(ann_file))
    root = ann_file.parent
    by_stem = {}
    for im in data['images']:
        src = root / im['file_name']
        if not src.is_file():
            raise ConversionError(f'{ann_file}: image {im["file_name"]!r} (id {im["id"]}) does not exist at {src}')
        image, rotated = _open_image(src)
        if (image.width, image.height) != (im['width'], im['height']):
            raise ConversionError(f'{ann_file}: image {src} is {image.width}x{image.height} but the json says '
                                  f'{im["width"]}x{im["height"]}')
        by_stem[Path(im['file_name']).stem] = (im, image, None if rotated else src)
    splits = _split(sorted(by_stem), **splits_args)
    for split, stems in splits.items():
        images = []
        for stem in stems:
            im, image, src = by_stem[stem]
            name = f'{stem}.jpg' if src is None else f'{stem}{src.suffix}'
            _write_image(out / COCO_SPLITS[split] / name, image, src)
            images.append({**im, 'file_name': name})
        ids = {im['id'] for im in images}
        _dump_coco(out / 'annotations' / f'instances_{COCO_SPLITS[split]}.json',
                   {'images': images, 'categories': data['categories'],
                    'annotations': [a for a in data['annotations'] if a['image_id'] in ids]})
    classes = [c['name'] for c in sorted(data['categories'], key=lambda c: c['id'])]
    _write_meta(out, classes)
    return classes


def convert_voc_export(path: Path, splits_args: dict, out: Path, labels: Path | None) -> list[str]:
    names_file = labels or path / 'class_names.txt'
    if not names_file.is_file():
        raise ConversionError(f'{path}: no class_names.txt (or pass --labels)')
    classes = read_label_file(names_file)
    if classes[0] != 'background':
        raise ConversionError(f'{names_file}: the first class must be _background_')
    stems = sorted(p.stem for p in (path / 'SegmentationClass').glob('*.png'))
    if not stems:
        raise ConversionError(f'{path}/SegmentationClass: no label PNGs')
    splits = _split(stems, **splits_args)
    for split, split_stems in splits.items():
        for stem in split_stems:
            img_path = next((path / 'JPEGImages' / f'{stem}{s}' for s in IMAGE_SUFFIXES
                             if (path / 'JPEGImages' / f'{stem}{s}').is_file()), None)
            if img_path is None:
                raise ConversionError(f'{path}/SegmentationClass/{stem}.png: no image {stem}.* in JPEGImages/')
            image, rotated = _open_image(img_path)
            seg_path = path / 'SegmentationClass' / f'{stem}.png'
            try:
                with Image.open(seg_path) as seg_img:
                    if seg_img.mode not in ('P', 'L'):
                        raise ConversionError(f'{seg_path}: mode {seg_img.mode}, expected a palette (P) or '
                                              'grey (L) PNG of class indices')
                    seg = np.array(seg_img)
            except OSError as err:
                raise ConversionError(f'{seg_path}: not a readable PNG ({err})') from None
            if seg.shape != (image.height, image.width):
                raise ConversionError(f'{seg_path} is {seg.shape[1]}x{seg.shape[0]} but its image {img_path} is '
                                      f'{image.width}x{image.height}')
            bad = sorted(set(np.unique(seg).tolist()) - set(range(len(classes))) - {255})
            if bad:
                raise ConversionError(f'{seg_path}: values {bad} are neither class indices (0..{len(classes) - 1}) '
                                      'nor 255 (ignore)')
            ade = np.where(seg == 255, 0, seg.astype(np.int32) + 1).astype(np.uint8)
            _write_image(out / 'images' / SEG_SPLITS[split] / f'{stem}.jpg', image,
                         None if rotated or img_path.suffix.lower() not in ('.jpg', '.jpeg') else img_path)
            dst = out / 'annotations' / SEG_SPLITS[split] / f'{stem}.png'
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ade, mode='L').save(dst)
    _write_meta(out, classes, reduce_zero_label=True,
                note='annotation value 0 = ignore, value k+1 = classes[k]; read with reduce_zero_label=True')
    return classes


def detect_format(path: Path) -> str:
    if path.is_file() and path.suffix == '.json' or (path / 'annotations.json').is_file():
        return 'coco'
    if (path / 'SegmentationClass').is_dir():
        return 'voc'
    if any(path.glob('*.json')):
        return 'labelme'
    raise ConversionError(f'{path}: neither a folder of labelme *.json files, nor a labelme2voc export '
                          '(SegmentationClass/), nor a labelme2coco export (annotations.json)')


def convert(src: str | Path, *, seg_out: str | Path | None = None, coco_out: str | Path | None = None,
            labels: str | Path | None = None, input_format: str = 'auto', val_ratio: float = 0.2,
            val_images: Sequence[str] | None = None, val_equals_train: bool = False,
            overwrite: bool = False) -> dict[str, list[str]]:
    """Convert one export; returns ``{'seg': classes, 'coco': classes}`` for the outputs written."""
    src = Path(src)
    if not src.exists():
        raise ConversionError(f'{src} does not exist')
    fmt = detect_format(src) if input_format == 'auto' else input_format
    if fmt not in ('labelme', 'voc', 'coco'):
        raise ConversionError(f'--input-format must be auto, labelme, voc or coco, got {fmt!r}')
    if seg_out is None and coco_out is None:
        raise ConversionError('nothing to do: pass --seg-out and / or --coco-out')
    if fmt == 'voc' and coco_out is not None:
        raise ConversionError(f'{src} is a labelme2voc export (semantic labels only): it cannot give --coco-out')
    if fmt == 'coco' and seg_out is not None:
        raise ConversionError(f'{src} is a labelme2coco export: use its labelme json folder for --seg-out')
    splits_args = dict(val_ratio=val_ratio, val_images=val_images, val_equals_train=val_equals_train)
    result = {}
    if fmt == 'labelme':
        samples = load_labelme_dir(src)
        if labels:
            classes = read_label_file(labels)
        else:
            found = {s['label'] for x in samples for s in x.shapes} - {IGNORE_LABEL, BACKGROUND_LABEL}
            classes = ['background', *sorted(found)]
        splits = _split([s.stem for s in samples], **splits_args)
        if seg_out is not None:
            _check_empty(Path(seg_out), overwrite)
            write_seg_from_labelme(samples, classes, splits, Path(seg_out))
            result['seg'] = list(classes)
        if coco_out is not None:
            _check_empty(Path(coco_out), overwrite)
            write_coco_from_labelme(samples, classes, splits, Path(coco_out))
            result['coco'] = [c for c in classes if c != 'background']
    elif fmt == 'voc':
        _check_empty(Path(seg_out), overwrite)
        result['seg'] = convert_voc_export(src, splits_args, Path(seg_out), Path(labels) if labels else None)
    else:
        _check_empty(Path(coco_out), overwrite)
        result['coco'] = convert_coco_export(src, splits_args, Path(coco_out))
    return result
