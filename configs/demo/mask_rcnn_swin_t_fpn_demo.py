# The demo: Mask R-CNN + FPN + Swin-T (configs/mask_rcnn_swin_t_fpn_1x_coco.py) on the 3 PASCAL VOC 2011 photos of
# the labelme 6.3.1 sdist (12 polygon instances of person, bus, car, bottle, chair, sofa), converted into the COCO
# layout by tools/prepare_demo_data.py (data/demo_coco, the 20 VOC object classes, ids shifted to start at 1).
# What differs from the recipe, so that it ends in about 10 minutes on 2 CPU cores:
# * the backbone starts from the recipe's ImageNet-1K Swin-T file when tools/run_demo.py can download it (then at
#   the recipe's learning rate, finetune_lr), else from random weights (init_cfg=None, lr 4e-4, the default here);
# * images resized to fit 640x384 (recipe: 1333x800);
# * 50 epochs of the 3 photos at batch 2 (100 iterations; recipe: 12 epochs of COCO at batch 16), lr 4e-4 (recipe:
#   1e-4, for ImageNet-initialised weights) with a 10-iteration warm-up, a step at epoch 40, gradient clipping;
# * the same 3 photos are the training and the validation set: box / mask AP measure fit, not generalisation.
# Measured on 2 CPU cores shared with other jobs: ~4.2 s per iteration; a 30-epoch run took 287 s end to end (box AP
# 0.592, mask AP 0.507); 50 epochs project to ~8 minutes.
# Run it with `python tools/run_demo.py --task det` (prepares the data, trains, evaluates, writes overlays).
_base_ = '../mask_rcnn_swin_t_fpn_1x_coco.py'

data_root = 'data/demo_coco/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
           'dog', 'horse', 'motorbike', 'person', 'potted plant', 'sheep', 'sofa', 'train', 'tv/monitor')
palette = [(128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128), (128, 128, 128),
           (64, 0, 0), (192, 0, 0), (64, 128, 0), (192, 128, 0), (64, 0, 128), (192, 0, 128), (64, 128, 128),
           (192, 128, 128), (0, 64, 0), (128, 64, 0), (0, 192, 0), (128, 192, 0), (0, 64, 128)]  # tuples for mmdet
metainfo = dict(classes=classes, palette=palette)
num_classes = 20
img_scale = (640, 384)
max_epochs = 50

model = dict(
    backbone=dict(drop_path_rate=0.1, init_cfg=None),
    roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=4e-4), clip_grad=dict(max_norm=5.0))  # from random weights
finetune_lr = 1e-4  # from ImageNet weights: the recipe's (tools/run_demo.py --pretrained sets it)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=10),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[40], gamma=0.1),
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=2, save_last=True))
custom_hooks = [dict(type='NonFiniteLossHook'), dict(type='DataCheckHook', level='decode')]
randomness = dict(seed=0)
auto_scale_lr = dict(enable=False, base_batch_size=2)
