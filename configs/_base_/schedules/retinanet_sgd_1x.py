# RetinaNet 1x as mmdet 3.x configs/swin/retinanet_swin-t-p4-w7_fpn_1x_coco.py sets it: mmdet's stock RetinaNet
# schedule, SGD lr 0.01, momentum 0.9, weight decay 1e-4 on every parameter; 500-iteration linear warm-up from
# 0.001x; 12 epochs, lr x0.1 at 8 and 11; batch 16 (8 GPUs x 2). (Not the AdamW of the Swin Mask R-CNN recipe:
# mmdet's Swin RetinaNet config keeps RetinaNet's own optimizer, in mmdet 2.x and 3.x alike.)
_base_ = 'mmdet::_base_/schedules/schedule_1x.py'

optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=0.0001))
