"""labelme json files as old and new labelme versions write them, read by the converter as labelme reads them.

labelme (``labelme/_label_file.py``, 6.3.1) takes the embedded ``imageData`` when there is one, whatever
``imagePath`` says; only a file without one is read from ``imagePath``, Windows separators turned into ``/`` and
resolved relative to the json's folder. Old labelme versions left stale ``imagePath`` values behind (the json's own
name, a path on the annotator's Windows machine) next to an embedded image.
"""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
import mmswin.datasets.labelme as labelme  # noqa: E402
from helpers import load_tool  # noqa: E402

labelme2mmswin = load_tool('dataset_converters/labelme2mmswin.py')  # the command line

W, H = 32, 24
CAT = [[4, 4], [20, 4], [20, 16], [4, 16]]  # polygon: x 4..20, y 4..16
DOG = [[22, 2], [30, 10]]  # rectangle


def _noise(seed: int) -> np.ndarray:
    """H x W RGB noise: any re-encoding as JPEG changes these pixels."""
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _encode(pixels: np.ndarray, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **params)
    return buf.getvalue()


def _decode(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert('RGB'))


def _old_labelme(path: Path, image_path: str, image_data: bytes | None) -> Path:
    """A file as labelme 3.x writes it: line / fill colours, no group_id, image embedded by default."""
    shapes = [{'label': 'cat', 'line_color': None, 'fill_color': None, 'points': CAT, 'shape_type': 'polygon',
               'flags': {}},
              {'label': 'dog', 'line_color': None, 'fill_color': None, 'points': DOG, 'shape_type': 'rectangle',
               'flags': {}}]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        'version': '3.16.7', 'flags': {}, 'shapes': shapes, 'lineColor': [0, 255, 0, 128],
        'fillColor': [255, 0, 0, 128], 'imagePath': image_path,
        'imageData': None if image_data is None else base64.b64encode(image_data).decode(),
        'imageHeight': H, 'imageWidth': W}, indent=2))
    return path


def _new_labelme(path: Path, image_path: str, image_data: bytes | str | None) -> Path:
    """A file as labelme 5.x / 6.x writes it: group_id, description, mask; ``imageData`` null with --nodata."""
    shapes = [{'label': 'cat', 'points': CAT, 'group_id': None, 'description': '', 'shape_type': 'polygon',
               'flags': {}, 'mask': None}]
    if isinstance(image_data, bytes):
        image_data = base64.b64encode(image_data).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        'version': '6.3.1', 'flags': {}, 'shapes': shapes, 'imagePath': image_path, 'imageData': image_data,
        'imageHeight': H, 'imageWidth': W}, indent=2, ensure_ascii=False))
    return path


def _convert(src: Path, out: Path) -> dict:
    return labelme.convert(src, seg_out=out / 'ade', coco_out=out / 'coco', val_equals_train=True)


def _coco_images(out: Path) -> dict[str, dict]:
    data = json.loads((out / 'coco/annotations/instances_train2017.json').read_text())
    return {im['file_name']: im for im in data['images']}


# ------------------------------------------------------------------------------------------ files labelme opens


def test_mixed_folder_of_old_and_new_files(tmp_path):
    """Stale imagePath + embedded image (old), Windows paths with and without an embedded image (new)."""
    src = tmp_path / 'ann'
    jpeg_a = _encode(_noise(1), 'JPEG', quality=90)
    jpeg_b = _encode(_noise(2), 'JPEG', quality=90)
    jpeg_c = _encode(_noise(3), 'JPEG', quality=90)
    jpeg_d = _encode(_noise(4), 'JPEG', quality=90)
    _old_labelme(src / 'a.json', 'a.json', jpeg_a)  # imagePath names the json itself
    _new_labelme(src / 'b.json', '..\\images\\b.jpg', jpeg_b)  # no such file: the embedded image counts
    _new_labelme(src / 'c.json', 'C:\\Users\\x\\Pictures\\c.jpg', jpeg_c)  # another machine's absolute path
    (tmp_path / 'images').mkdir()
    (tmp_path / 'images' / 'd.jpg').write_bytes(jpeg_d)
    _new_labelme(src / 'd.json', '..\\images\\d.jpg', None)  # --nodata: read ../images/d.jpg

    assert _convert(src, tmp_path / 'out') == {'seg': ['background', 'cat', 'dog'], 'coco': ['cat', 'dog']}

    coco = _coco_images(tmp_path / 'out')
    assert sorted(coco) == ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg']
    for stem, data in (('a', jpeg_a), ('b', jpeg_b), ('c', jpeg_c), ('d', jpeg_d)):
        assert (coco[f'{stem}.jpg']['width'], coco[f'{stem}.jpg']['height']) == (W, H)
        for written in (tmp_path / 'out/ade/images/training' / f'{stem}.jpg',
                        tmp_path / 'out/coco/train2017' / f'{stem}.jpg'):
            assert written.read_bytes() == data, f'{written}: JPEG not written byte for byte'
            np.testing.assert_array_equal(_decode(written.read_bytes()), _decode(data))
        label = np.array(Image.open(tmp_path / f'out/ade/annotations/training/{stem}.png'))
        assert label.shape == (H, W)
        assert label[10, 10] == 2 and label[20, 2] == 1  # cat + 1, background + 1
        assert label[6, 26] == (3 if stem == 'a' else 1)  # only the old file has the dog rectangle

    anns = json.loads((tmp_path / 'out/coco/annotations/instances_train2017.json').read_text())['annotations']
    a_id = next(im['id'] for im in coco.values() if im['file_name'] == 'a.jpg')
    assert sorted((a['category_id'], tuple(a['bbox'])) for a in anns if a['image_id'] == a_id) == \
        [(1, (4.0, 4.0, 17.0, 13.0)), (2, (22.0, 2.0, 9.0, 9.0))]


def test_embedded_image_wins_over_an_existing_image_path(tmp_path):
    """As in labelme, imageData is the image even when imagePath names a readable (different) file."""
    src = tmp_path / 'ann'
    embedded = _encode(_noise(5), 'JPEG', quality=90)
    src.mkdir()
    (src / 'e.jpg').write_bytes(_encode(_noise(6), 'JPEG', quality=90))
    _new_labelme(src / 'e.json', 'e.jpg', embedded)
    _convert(src, tmp_path / 'out')
    assert (tmp_path / 'out/coco/train2017/e.jpg').read_bytes() == embedded


@pytest.mark.parametrize('no_data', [None, ''])
def test_no_embedded_image_reads_image_path(tmp_path, no_data):
    """imageData null (labelme --nodata) or empty: imagePath, Windows separators, relative to the json."""
    src = tmp_path / 'project' / 'ann'
    jpeg = _encode(_noise(7), 'JPEG', quality=90)
    (tmp_path / 'project' / 'images' / 'sub').mkdir(parents=True)
    (tmp_path / 'project' / 'images' / 'sub' / 'f.jpg').write_bytes(jpeg)
    _new_labelme(src / 'f.json', '..\\images\\sub\\f.jpg', no_data)
    _convert(src, tmp_path / 'out')
    assert (tmp_path / 'out/ade/images/training/f.jpg').read_bytes() == jpeg
    assert (tmp_path / 'out/coco/train2017/f.jpg').read_bytes() == jpeg


def test_embedded_png_is_written_as_a_real_jpeg(tmp_path):
    """The layouts name every image <stem>.jpg: an embedded PNG is JPEG-encoded (close pixels, right size)."""
    y, x = np.mgrid[0:H, 0:W]
    smooth = np.stack([x * 8, y * 10, np.full_like(x, 128)], axis=-1).astype(np.uint8)
    png = _encode(smooth, 'PNG')
    src = tmp_path / 'ann'
    _old_labelme(src / 'g.json', 'g.json', png)
    _convert(src, tmp_path / 'out')
    for written in (tmp_path / 'out/ade/images/training/g.jpg', tmp_path / 'out/coco/train2017/g.jpg'):
        with Image.open(written) as img:
            assert (img.format, img.size, img.mode) == ('JPEG', (W, H), 'RGB')
        diff = np.abs(_decode(written.read_bytes()).astype(int) - smooth.astype(int))
        assert diff.mean() < 2 and diff.max() < 16, (diff.mean(), diff.max())
    image = _coco_images(tmp_path / 'out')['g.jpg']
    assert (image['width'], image['height']) == (W, H)


def test_embedded_jpeg_exif_rotation_is_not_applied(tmp_path):
    """labelme shows embedded pixels as stored (its annotations are in that frame): no rotation, no stale tag."""
    pixels = _noise(8)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise" -- a viewer applying it would show 24x32
    rotated_tag = _encode(pixels, 'JPEG', quality=95, exif=exif.tobytes())
    src = tmp_path / 'ann'
    _new_labelme(src / 'h.json', 'h.jpg', rotated_tag)  # imageWidth 32, imageHeight 24: the stored frame
    _convert(src, tmp_path / 'out')
    written = tmp_path / 'out/coco/train2017/h.jpg'
    with Image.open(written) as img:
        assert img.size == (W, H) and img.getexif().get(0x0112, 1) == 1
    assert np.abs(_decode(written.read_bytes()).astype(int) - _decode(rotated_tag).astype(int)).mean() < 20
    assert _coco_images(tmp_path / 'out')['h.jpg']['width'] == W


# ------------------------------------------------------------------------------------ files labelme cannot open


def test_missing_image_names_the_json_and_the_path_tried(tmp_path):
    src = tmp_path / 'ann'
    path = _new_labelme(src / 'm.json', '..\\images\\m.jpg', None)
    with pytest.raises(labelme.ConversionError) as err:
        _convert(src, tmp_path / 'out')
    message = str(err.value)
    assert message.startswith(f'{path}: image ')
    assert str(src / '..' / 'images' / 'm.jpg') in message and 'does not exist' in message
    assert 'embeds no imageData' in message


def test_missing_image_suggests_the_file_next_to_the_json(tmp_path):
    src = tmp_path / 'ann'
    src.mkdir()
    (src / 'm.jpg').write_bytes(_encode(_noise(9), 'JPEG'))
    _new_labelme(src / 'm.json', 'C:\\Users\\x\\m.jpg', None)
    with pytest.raises(labelme.ConversionError, match=r'm\.json: image .* does not exist .*'
                       r'set "imagePath": "m\.jpg"'):
        _convert(src, tmp_path / 'out')


def test_image_path_naming_the_json_without_embedded_image(tmp_path):
    src = tmp_path / 'ann'
    path = _old_labelme(src / 'n.json', 'n.json', None)
    with pytest.raises(labelme.ConversionError) as err:
        _convert(src, tmp_path / 'out')
    assert str(err.value) == (f'{path}: "imagePath" names this json file itself and the file embeds no imageData; '
                              'set "imagePath" to the file name of its image')


@pytest.mark.parametrize('image_data, why', [
    ('not base64!!', 'bad base64'),
    (base64.b64encode(b'hello, not an image').decode(), 'base64 of no image'),
    (base64.b64encode(_encode(_noise(10), 'JPEG')[:300]).decode(), 'truncated JPEG'),
])
def test_corrupt_image_data_names_the_json(tmp_path, image_data, why):
    src = tmp_path / 'ann'
    path = _new_labelme(src / 'k.json', 'k.jpg', image_data)
    (src / 'k.jpg').write_bytes(_encode(_noise(11), 'JPEG'))  # labelme does not fall back to it either
    with pytest.raises(labelme.ConversionError) as err:
        _convert(src, tmp_path / 'out')
    assert str(err.value).startswith(f'{path}: the embedded "imageData" is not a base64-encoded image ('), why
    assert 'set "imageData" to null' in str(err.value)
    assert not (tmp_path / 'out' / 'ade' / 'images').exists()


def test_cli_reports_corrupt_image_data(tmp_path, capsys):
    src = tmp_path / 'ann'
    _new_labelme(src / 'k.json', 'k.json', 'AAAA')
    assert labelme2mmswin.main([str(src), '--coco-out', str(tmp_path / 'out'), '--val-equals-train']) == 1
    err = capsys.readouterr().err
    assert err.startswith('labelme2mmswin: error: ') and 'k.json: the embedded "imageData"' in err
