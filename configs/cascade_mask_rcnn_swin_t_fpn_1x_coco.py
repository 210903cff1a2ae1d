# Cascade Mask R-CNN + FPN, Swin-T, 1x on COCO 2017: the official Swin recipe (Swin-Transformer-Object-Detection
# configs/swin/cascade_mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_1x_coco.py): as
# cascade_mask_rcnn_swin_t_fpn_3x_coco.py (GIoU 4conv1fc SyncBN box heads, multi-scale 480-800 + crop training,
# AdamW 1e-4 / wd 0.05) for 12 epochs (lr x0.1 at 8 and 11) and WITHOUT drop-path (the official 1x sets 0.0).
# Reference: 48.1 box AP / 41.7 mask AP (official, mixed precision: add --amp). 8 GPUs x 2 images.
_base_ = [
    './_base_/models/cascade_mask_rcnn_swin_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/swin_det_adamw_1x.py',
    './_base_/det_runtime.py',
]

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.0, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
