# Cascade Mask R-CNN + FPN with the GIoU 4conv1fc box heads (cascade_mask_rcnn_giou_4conv1f_fpn.py) and an mmswin
# Swin Transformer backbone (Swin-T sizes by default; every other backbone argument keeps its default: window 7,
# patch 4, no absolute position embedding, all four levels out). Children set `arch`, the drop-path rate, the
# pretrained file and the neck's in_channels.
_base_ = './cascade_mask_rcnn_giou_4conv1f_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',  # C=96, depths (2, 2, 6, 2), heads (3, 6, 12, 24)
        drop_path_rate=0.2),  # official Swin-T / S cascade 3x value
    neck=dict(in_channels=[96, 192, 384, 768]))
