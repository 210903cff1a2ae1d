# Cascade Mask R-CNN + FPN, Swin-T, 3x on COCO 2017: the official Swin recipe (Swin-Transformer-Object-Detection
# configs/swin/cascade_mask_rcnn_swin_tiny_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco.py): GIoU box
# heads with 4 convs + 1 fc and SyncBN in the three stages, multi-scale 480-800 + crop training, AdamW lr 1e-4 /
# weight decay 0.05 (no decay on position tables and norms), drop-path 0.2, 36 epochs (lr x0.1 at 27 and 33),
# 8 GPUs x 2 images. Reference: 50.4 box AP / 43.7 mask AP (official). The official runs trained in mixed precision
# (apex): add --amp for that setting. Warm-up: 1000 iterations (mmdet 3.x Swin schedule; the official one had 500).
_base_ = [
    './_base_/models/cascade_mask_rcnn_swin_fpn.py',
    './_base_/datasets/coco_instance_ms_crop.py',
    './_base_/schedules/swin_det_adamw_3x.py',
    './_base_/det_runtime.py',
]

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth
pretrained = 'checkpoints/swin_tiny_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='tiny', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
