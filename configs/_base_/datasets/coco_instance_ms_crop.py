# COCO instance segmentation (stock mmdet data set settings, data_root data/coco/) with the multi-scale + crop
# training augmentation of the Swin 3x recipe (from DETR / Sparse R-CNN): either resize the shorter side to one of
# 480..800 (step 32, longer side <= 1333), or resize to 400/500/600, crop a random 384..600 patch and resize
# again to 480..800. Testing is unchanged (single scale 1333x800).
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

ms_train_scales = [(480, 1333), (512, 1333), (544, 1333), (576, 1333), (608, 1333), (640, 1333),
                   (672, 1333), (704, 1333), (736, 1333), (768, 1333), (800, 1333)]

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [dict(type='RandomChoiceResize', scales=ms_train_scales, keep_ratio=True)],
            [
                dict(type='RandomChoiceResize', scales=[(400, 1333), (500, 1333), (600, 1333)], keep_ratio=True),
                dict(type='RandomCrop', crop_type='absolute_range', crop_size=(384, 600), allow_negative_crop=True),
                dict(type='RandomChoiceResize', scales=ms_train_scales, keep_ratio=True),
            ],
        ]),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
