# UperNet, Swin-B (ImageNet-1k, window 7), ADE20K (recipe of upernet_swin_t_ade20k.py).
# Reference mIoU: 48.13 single scale / 49.72 multi-scale + flip (official).
_base_ = './upernet_swin_t_ade20k.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_base_patch4_window7_224.pth
pretrained = 'checkpoints/swin_base_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
