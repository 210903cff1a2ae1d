"""mmswin: Swin and Shunted Transformer backbones for mmdet 3.x / mmsegmentation 1.x."""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r"__version__ = '([^']+)'", (HERE / 'mmswin' / 'version.py').read_text()).group(1)

setup(
    name='mmswin',
    version=VERSION,
    description='Swin and Shunted Transformer backbones for mmdet 3.x and mmsegmentation 1.x',
    long_description=(HERE / 'README.md').read_text() if (HERE / 'README.md').exists() else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmswin', 'mmswin.*']),
    python_requires='>=3.9',
    # torch / torchvision / mmcv are installed by tools/setup_env.sh (mmcv 2.1.0 must be compiled against torch).
    install_requires=[
        'torch>=2.6',  # tested with 2.14; torch.nn.utils.get_total_norm and torch.is_autocast_enabled(device) need 2.6
        'mmcv>=2.0.0rc4,<2.2.0',
        'mmengine>=0.10,<0.11',
        'mmdet>=3.3,<3.4',
        'mmsegmentation>=1.2,<1.3',
        'timm>=1.0,<1.1',
        'pycocotools',
    ],
    extras_require={'tests': ['pytest', 'pytest-timeout'], 'int8': ['torchao>=0.18,<0.19']},
    license='Apache-2.0',
)
