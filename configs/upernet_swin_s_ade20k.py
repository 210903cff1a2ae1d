# UperNet, Swin-S, ADE20K (recipe of upernet_swin_t_ade20k.py).
# Reference mIoU: 47.64 single scale / 49.47 multi-scale + flip (official).
_base_ = './upernet_swin_t_ade20k.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_small_patch4_window7_224.pth
pretrained = 'checkpoints/swin_small_patch4_window7_224.pth'

model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
