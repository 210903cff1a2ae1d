# Mask R-CNN + FPN + Swin-T on your own data, one GPU. The data: a folder in the COCO layout with a meta.json, as
# `tools/dataset_converters/labelme2mmswin.py LABELME_DIR --labels labels.txt --coco-out data/my_coco` writes it
# (train2017/, val2017/, annotations/instances_{train,val}2017.json, category ids 1..N in meta.json's order).
# Name the folder with one environment variable; classes, palette and the number of classes come from meta.json:
#
#   MMSWIN_DATA=data/my_coco .venv/bin/python tools/train.py configs/own_data/mask_rcnn_swin_t_fpn_own.py
#   .venv/bin/python tools/test.py work_dirs/mask_rcnn_swin_t_fpn_own/mask_rcnn_swin_t_fpn_own.py CHECKPOINT
#
# (the config saved in the work dir holds the classes, so testing needs no MMSWIN_DATA). What differs from the
# COCO recipe (configs/mask_rcnn_swin_t_fpn_1x_coco.py, 12 epochs of batch 16 on 8 GPUs), for a small data set on
# one GPU: batch 2, 24 epochs (lr x0.1 at 16 and 22; a 100-iteration warm-up instead of 1000, which would outlast
# a small data set's first epochs; the recipe's AdamW lr 1e-4), evaluation and a checkpoint every 4 epochs, the
# best box AP kept. Start from the ImageNet weights as the recipe does (checkpoints/swin_tiny_patch4_window7_224.pth,
# see the README's "Pretrained backbones"). A larger data set: fewer epochs (--cfg-options train_cfg.max_epochs=N).
_base_ = '../mask_rcnn_swin_t_fpn_1x_coco.py'

from mmswin.datasets.labelme import read_meta  # noqa: E402

data_root = '{{$MMSWIN_DATA:data/my_coco}}/'
own_meta = read_meta(data_root)
metainfo = dict(classes=own_meta['classes'], palette=[tuple(c) for c in own_meta['palette']])  # tuples for mmdet
num_classes = len(own_meta['classes'])
max_epochs = 24
interval = 4

model = dict(roi_head=dict(bbox_head=dict(num_classes=num_classes), mask_head=dict(num_classes=num_classes)))

train_dataloader = dict(
    batch_size=2, num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/')))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=max_epochs, val_interval=interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[16, 22], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=interval, max_keep_ckpts=2, save_best='coco/bbox_mAP'))
auto_scale_lr = dict(enable=False, base_batch_size=2)
