# Cascade Mask R-CNN + FPN (stock mmdet model: three cascade stages at IoU 0.5 / 0.6 / 0.7, loss weights 1 / 0.5 /
# 0.25, FCN mask head) with the box heads of the Swin cascade recipe (Swin-Transformer-Object-Detection
# configs/swin/cascade_mask_rcnn_swin_*_giou_4conv1f_adamw_*.py; PVT v2's cascade configs use the same heads): in each
# stage 4 shared 3x3 convs (256 channels, SyncBN) + 1 fc (1024), class-specific regression of the decoded boxes with
# a GIoU loss of weight 10, the stock per-stage target stds. The backbone is set by
# cascade_mask_rcnn_{swin,shunted}_fpn.py.
_base_ = 'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py'

model = dict(
    roi_head=dict(
        bbox_head=[
            dict(
                type='Shared4Conv1FCBBoxHead',  # = ConvFCBBoxHead(num_shared_convs=4, num_shared_fcs=1)
                in_channels=256,
                conv_out_channels=256,
                fc_out_channels=1024,
                roi_feat_size=7,
                num_classes=80,
                norm_cfg=dict(type='SyncBN', requires_grad=True),
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stage_stds),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stage_stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ]))
