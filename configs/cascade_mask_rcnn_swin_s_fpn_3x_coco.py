# Cascade Mask R-CNN + FPN, Swin-S, 3x on COCO 2017 (recipe of cascade_mask_rcnn_swin_t_fpn_3x_coco.py, drop-path
# 0.2, as the official cascade_mask_rcnn_swin_small_patch4_window7_..._3x_coco.py).
# Reference: 51.9 box AP / 45.0 mask AP (official, mixed precision: add --amp).
_base_ = './cascade_mask_rcnn_swin_t_fpn_3x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='small', drop_path_rate=0.2, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
