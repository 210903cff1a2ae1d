# UperNet, SwinV2-L pre-trained on ImageNet-22K (192x192, window 12), ADE20K at 640x640 crops, window 24 (recipe of
# upernet_swinv2_b_ade20k_640_22k.py). No published ADE20K figure exists for SwinV2-L with UperNet.
_base_ = './upernet_swinv2_b_ade20k_640_22k.py'

# https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_large_patch4_window12_192_22k.pth
pretrained = 'checkpoints/swinv2_large_patch4_window12_192_22k.pth'

model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
