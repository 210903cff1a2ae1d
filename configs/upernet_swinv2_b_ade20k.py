# UperNet, SwinV2-B (ImageNet-1K, 256x256, window 16), ADE20K 512x512 (recipe of upernet_swinv2_t_ade20k.py).
# No published ADE20K figure exists for this combination.
_base_ = './upernet_swinv2_t_ade20k.py'

# https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_base_patch4_window16_256.pth
pretrained = 'checkpoints/swinv2_base_patch4_window16_256.pth'

model = dict(
    backbone=dict(arch='base', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
