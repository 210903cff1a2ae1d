# UperNet, SwinV2-S (ImageNet-1K, 256x256, window 16), ADE20K 512x512 (recipe of upernet_swinv2_t_ade20k.py).
# No published ADE20K figure exists for this combination.
_base_ = './upernet_swinv2_t_ade20k.py'

# https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_small_patch4_window16_256.pth
pretrained = 'checkpoints/swinv2_small_patch4_window16_256.pth'

model = dict(
    backbone=dict(arch='small', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
