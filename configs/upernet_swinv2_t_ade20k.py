# UperNet, SwinV2-T (ImageNet-1K, 256x256, window 16), ADE20K 512x512, 160k iterations: the Swin V1 UperNet recipe
# of upernet_swin_t_ade20k.py with the V2 backbone at window 16 and V2's no-decay parameters. No published ADE20K
# figure exists for SwinV2-T/S/B (the paper reports UperNet with SwinV2-G only). 8 GPUs x 2 images.
_base_ = './upernet_swin_t_ade20k.py'

# Official SwinV2-T, loaded strictly in any layout (official / timm / mmpretrain). Get it with
#   mkdir -p checkpoints && wget -O checkpoints/swinv2_tiny_patch4_window16_256.pth \
#     https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_tiny_patch4_window16_256.pth
pretrained = 'checkpoints/swinv2_tiny_patch4_window16_256.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformerV2',
        arch='tiny',
        window_size=16,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# V2's no-weight-decay parameters (the official optimizer's cpb_mlp and logit_scale, and its 1-D q / v biases),
# added to the recipe's keys (position tables, norms).
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={
            'cpb_mlp': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
            'q_bias': dict(decay_mult=0.),
            'v_bias': dict(decay_mult=0.),
        }))
