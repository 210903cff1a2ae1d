# Mask R-CNN + FPN, Swin-T, 3x on COCO 2017 with multi-scale + crop training (official Swin and mmdet 3.x recipe).
# Reference: 46.0 box AP / 41.6 mask AP (official; mmdet 3.x: the same). 8 GPUs x 2 images.
_base_ = [
    './_base_/models/mask_rcnn_swin_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/swin_det_adamw_3x.py',
    './_base_/det_runtime.py',
]

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='tiny', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
