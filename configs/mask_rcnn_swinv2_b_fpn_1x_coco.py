# Mask R-CNN + FPN, 1x (single scale 1333x800) on COCO 2017 with SwinV2-B (ImageNet-1K, 256x256, window 16): the recipe
# of mask_rcnn_swinv2_t_fpn_1x_coco.py, drop-path 0.3. No published COCO figure exists for this combination.
_base_ = './mask_rcnn_swinv2_t_fpn_1x_coco.py'

# https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_base_patch4_window16_256.pth
pretrained = 'checkpoints/swinv2_base_patch4_window16_256.pth'

model = dict(
    backbone=dict(arch='base', drop_path_rate=0.3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[128, 256, 512, 1024]))
