# UperNet, Swin-L pre-trained on ImageNet-22K (384x384, window 12), ADE20K at 640x640 crops, 160k iterations
# (recipe of upernet_swin_b_ade20k_640_22k.py). Reference mIoU: 52.05 single scale / 53.53 multi-scale + flip
# (official, Swin-Transformer README and paper Table 3).
_base_ = './upernet_swin_b_ade20k_640_22k.py'

# https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth
pretrained = 'checkpoints/swin_large_patch4_window12_384_22k.pth'

model = dict(
    backbone=dict(arch='large', init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
