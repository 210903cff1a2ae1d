# Swin UperNet recipe on ADE20K (mmseg 1.x configs/swin; official Swin-Transformer-Semantic-Segmentation):
# AdamW lr 6e-5, betas (0.9, 0.999), weight decay 0.01, no decay on absolute_pos_embed,
# relative_position_bias_table and every norm; 1500-iteration linear warm-up, then poly decay (power 1.0) to 0
# at 160k iterations; batch 16 (8 GPUs x 2); validation and checkpoint every 16k iterations (stock schedule).
_base_ = 'mmseg::_base_/schedules/schedule_160k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# mmseg's stock schedule has no auto_scale_lr entry; this enables --auto-scale-lr for the 16-image recipe.
auto_scale_lr = dict(enable=False, base_batch_size=16)

# Checkpoints are written to a temporary file, then renamed (mmswin.engine); interval etc. stay the stock schedule's.
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
