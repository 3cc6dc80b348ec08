# RetinaNet + FPN, 1x schedule (12 epochs), COCO 2017 detection, with the DOTS ImageNet network as the
# backbone. Everything except the backbone is mmdet's retinanet_r50_fpn_1x_coco.
#
#   nni-decouple transfer configs/mmdet/retinanet_nd-dots-imagenet_fpn_1x_coco.py --data-root data/coco
#
# The backbone starts from its ImageNet weights at the default place, runs/train-dots_imagenet-imagenet/model.pth
# (relative to where you run), which this command writes (DARTS' ImageNet recipe, 48 channels, 14 cells):
#   nni-decouple train dots_imagenet --dataset imagenet --data-root IMAGENET_DIR
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH; none: model.backbone.init_cfg=None.
# Check a backbone first on a few images: add --smoke.
#
# Another backbone is one change: model.backbone.model, in the file or on the command line, e.g.
#   --cfg-options model.backbone.model=nd_darts_v2_imagenet      (a preset: timm.list_models('nd_*'))
#   --cfg-options model.backbone.model=runs/dots-cifar10/genotype.json   (a searched genotype)
# `nni-decouple transfer` then sets the FPN's in_channels to that backbone's channels.
_base_ = ['mmdet::retinanet/retinanet_r50_fpn_1x_coco.py']

custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='NNIDecoupleBackbone',
        model='nd_dots_imagenet',
        # Feature levels of the DARTS ImageNet network: strides 4, 8, 16, 32 (ResNet's C2-C5).
        out_indices=(0, 1, 2, 3),
        # Level 0 is the stride-4 stem: freezing it matches ResNet's frozen_stages=1 (stem + res2).
        frozen_stages=0,
        norm_eval=True,
        # ImageNet weights: see the top of this file; init_cfg=None trains from random weights.
        init_cfg=dict(type='Pretrained', checkpoint='runs/train-dots_imagenet-imagenet/model.pth')),
    # Channels of nd_dots_imagenet's levels (48 initial channels, 4 concatenated nodes per cell).
    neck=dict(in_channels=[48, 192, 384, 768]))
