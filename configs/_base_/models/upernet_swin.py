# UperNet (stock mmseg model: UPerHead pool scales (1, 2, 3, 6), 512 channels, SyncBN; auxiliary FCNHead on
# stage index 2 with loss weight 0.4) with an mmswin Swin Transformer backbone (Swin-T sizes by default).
_base_ = 'mmseg::_base_/models/upernet_swin.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmswin.SwinTransformer',
        arch='tiny',
        pretrain_img_size=224,
        patch_size=4,
        window_size=7,
        mlp_ratio=4.,
        qkv_bias=True,
        patch_norm=True,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,  # Swin UperNet recipe
        use_abs_pos_embed=False,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        with_cp=False),
    decode_head=dict(in_channels=[96, 192, 384, 768], num_classes=150),
    auxiliary_head=dict(in_channels=384, num_classes=150))
