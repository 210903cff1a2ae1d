# Cascade Mask R-CNN + FPN with the GIoU 4conv1fc box heads (cascade_mask_rcnn_giou_4conv1f_fpn.py) and an mmswin
# Shunted Transformer backbone (Shunted-T by default; all sizes share the widths 64/128/256/512). The stem
# BatchNorm keeps its defaults: trainable affine, statistics frozen (norm_eval=True) -- our choice for 2 images per GPU.
_base_ = './cascade_mask_rcnn_giou_4conv1f_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.ShuntedTransformer',
        arch='tiny',
        drop_path_rate=0.1),  # PVT v2 detection value (its authors point to the PVT v2 detection code)
    neck=dict(in_channels=[64, 128, 256, 512]))
