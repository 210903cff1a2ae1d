"""mmswin's model registry: a child of mmengine's root, so mmdet / mmseg configs reach our backbones.

Configs write ``type='mmswin.SwinTransformer'`` together with
``custom_imports=dict(imports=['mmswin.models'], allow_failed_imports=False)``.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='mmswin', locations=['mmswin.models'])

__all__ = ['MODELS']
