# Mask R-CNN + FPN (stock mmdet model) with an mmswin Shunted Transformer backbone (Shunted-T by default).
# Children set `arch` and the pretrained file; all sizes share the widths 64/128/256/512.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        in_channels=3,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.1,  # PVT v2 detection value (its authors point to the PVT v2 detection code)
        # Stem BatchNorm: trainable affine, statistics frozen (eval mode) -- our choice for 2 images per GPU.
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=True,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        with_cp=False),
    neck=dict(in_channels=[64, 128, 256, 512]))
