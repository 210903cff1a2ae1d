# Mask R-CNN + FPN, Swin-S, 1x on COCO 2017 (recipe of mask_rcnn_swin_t_fpn_1x_coco.py; no published 1x number).
_base_ = './mask_rcnn_swin_t_fpn_1x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
