# Mask R-CNN + FPN (stock mmdet model) with an mmswin Swin Transformer backbone (Swin-T sizes by default).
# Children set `arch`, the pretrained file and the neck's in_channels.
_base_ = 'mmdet::_base_/models/mask-rcnn_r50_fpn.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',  # C=96, depths (2, 2, 6, 2), heads (3, 6, 12, 24)
        pretrain_img_size=224,
        patch_size=4,
        window_size=7,
        mlp_ratio=4.,
        qkv_bias=True,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.2,  # mmdet 3.x Swin recipe (the official 1x used 0.1)
        use_abs_pos_embed=False,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        with_cp=False),
    neck=dict(in_channels=[96, 192, 384, 768]))
