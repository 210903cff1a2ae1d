# Cascade Mask R-CNN + FPN, Swin-B (ImageNet-1k, window 7), 3x on COCO 2017 (recipe of
# cascade_mask_rcnn_swin_t_fpn_3x_coco.py, drop-path 0.3, as the official
# cascade_mask_rcnn_swin_base_patch4_window7_..._3x_coco.py, whose published model starts from the ImageNet-1k
# window-7 weights). Reference: 51.9 box AP / 45.0 mask AP (official, mixed precision: add --amp).
_base_ = './cascade_mask_rcnn_swin_t_fpn_3x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth
pretrained = 'checkpoints/swin_base_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
