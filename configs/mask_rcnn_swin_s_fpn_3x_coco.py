# Mask R-CNN + FPN, Swin-S, 3x on COCO 2017 with multi-scale + crop training.
# Reference: 48.5 box AP / 43.3 mask AP (official); mmdet 3.x trained it with AMP: 48.2 / 43.2 (add --amp).
_base_ = './mask_rcnn_swin_t_fpn_3x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[96, 192, 384, 768]))
