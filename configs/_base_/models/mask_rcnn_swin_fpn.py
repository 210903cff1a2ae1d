# Mask R-CNN + FPN (stock mmdet model) with an mmswin Swin Transformer backbone (Swin-T sizes by default).
# Children set `arch`, the pretrained file and the neck's in_channels. Every other backbone argument keeps its
# default (window 7, patch 4, no absolute position embedding, all four levels out): see SwinTransformer's docstring.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',  # C=96, depths (2, 2, 6, 2), heads (3, 6, 12, 24)
        drop_path_rate=0.2),  # mmdet 3.x Swin recipe (the official 1x used 0.1)
    neck=dict(in_channels=[96, 192, 384, 768]))
