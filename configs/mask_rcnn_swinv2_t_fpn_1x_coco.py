# Mask R-CNN + FPN, 1x (single scale 1333x800) on COCO 2017 with SwinV2-T (ImageNet-1K, 256x256, window 16): the Swin V1
# recipe of mask_rcnn_swin_t_fpn_1x_coco.py with the V2 backbone at window 16 (the V2 paper fine-tunes detection at
# window 16 or larger) and V2's no-decay parameters. No published COCO figure exists for SwinV2-T/S/B (the paper reports
# SwinV2-L / G with HTC++ only). 8 GPUs x 2 images.
_base_ = './mask_rcnn_swin_t_fpn_1x_coco.py'

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
        drop_path_rate=0.2,
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
