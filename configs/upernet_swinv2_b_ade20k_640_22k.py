# UperNet, SwinV2-B pre-trained on ImageNet-22K (192x192, window 12), ADE20K at 640x640 crops, 160k iterations: the
# recipe of upernet_swin_b_ade20k_640_22k.py with the V2 backbone fine-tuned at window 24 (window transfer: the
# coordinate tables are recomputed for 24 and normalised by the pretraining windows (12, 12, 12, 6) -- the last
# stage's 192-px map was 6 wide -- as the official 22K-to-1K fine-tuning configs set them; nothing is interpolated).
# At 640 the last stage's map (20) is smaller than 24: it attends in one 20-wide window, unshifted. No published
# ADE20K figure exists for SwinV2-B (the paper's UperNet figure is SwinV2-G, 59.9 mIoU multi-scale).
_base_ = './upernet_swin_b_ade20k_640_22k.py'

# Official SwinV2-B ImageNet-22K weights. Get them with
#   mkdir -p checkpoints && wget -O checkpoints/swinv2_base_patch4_window12_192_22k.pth \
#     https://github.com/SwinTransformer/storage/releases/download/v2.0.0/swinv2_base_patch4_window12_192_22k.pth
pretrained = 'checkpoints/swinv2_base_patch4_window12_192_22k.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformerV2',
        arch='base',
        window_size=24,
        pretrained_window_size=(12, 12, 12, 6),
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
