# Swin Mask R-CNN recipe, 1x (mmdet 3.x configs/swin; official Swin-Transformer-Object-Detection):
# AdamW lr 1e-4, betas (0.9, 0.999), weight decay 0.05, no decay on absolute_pos_embed,
# relative_position_bias_table and every norm; 1000-iteration linear warm-up; 12 epochs, lr x0.1 at 8 and 11.
# Batch 16 = 8 GPUs x 2 images (auto_scale_lr.base_batch_size=16 from the stock schedule, used by --auto-scale-lr).
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(
        custom_keys={
            'absolute_pos_embed': dict(decay_mult=0.),
            'relative_position_bias_table': dict(decay_mult=0.),
            'norm': dict(decay_mult=0.),
        }))
