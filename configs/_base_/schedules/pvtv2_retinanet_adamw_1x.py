# PVT v2 RetinaNet recipe, 1x (whai362/PVT detection/configs/retinanet_pvt_v2_b*_fpn_1x_coco.py): as the PVT v2
# Mask R-CNN 1x schedule (pvtv2_det_adamw_1x.py: AdamW, weight decay 1e-4 on every parameter, 500-iteration warm-up,
# 12 epochs, steps 8 and 11) with lr 1e-4 instead of 2e-4.
_base_ = './pvtv2_det_adamw_1x.py'

optim_wrapper = dict(optimizer=dict(lr=0.0001))
