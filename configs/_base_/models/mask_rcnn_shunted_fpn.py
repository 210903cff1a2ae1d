# Mask R-CNN + FPN (stock mmdet model) with an mmswin Shunted Transformer backbone (Shunted-T by default).
# Children set `arch` and the pretrained file; all sizes share the widths 64/128/256/512. The stem BatchNorm keeps
# its defaults: trainable affine, statistics frozen (norm_eval=True) -- our choice for 2 images per GPU.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        drop_path_rate=0.1),  # PVT v2 detection value (its authors point to the PVT v2 detection code)
    neck=dict(in_channels=[64, 128, 256, 512]))
