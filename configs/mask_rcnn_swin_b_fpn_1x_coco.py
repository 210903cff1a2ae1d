# Mask R-CNN + FPN, Swin-B (ImageNet-1k, window 7), 1x on COCO 2017 (recipe of mask_rcnn_swin_t_fpn_1x_coco.py;
# no published number for this combination).
_base_ = './mask_rcnn_swin_t_fpn_1x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth
pretrained = 'checkpoints/swin_base_patch4_window7_224.pth'

model = dict(
    backbone=dict(
        arch='base',
        drop_path_rate=0.3,  # our choice: the rate the official Swin-B detection configs use
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
