# Mask R-CNN + FPN, 1x schedule (8 epochs over the 8x repeated train set), Cityscapes instance
# segmentation, with the DOTS ImageNet network as the backbone. Everything except the backbone is
# mmdet's mask-rcnn_r50_fpn_1x_cityscapes: data in mmdet's Cityscapes layout (leftImg8bit/, gtFine/
# and annotations/instancesonly_filtered_gtFine_{train,val}.json from mmdet's cityscapes converter),
# evaluated with COCO's bbox and segm AP.
#
#   nni-decouple transfer configs/mmdet/mask-rcnn_nd-dots-imagenet_fpn_1x_cityscapes.py --data-root data/cityscapes
#
# The backbone starts from its ImageNet weights at the default place, runs/train-dots_imagenet-imagenet/model.pth
# (relative to where you run), which this command writes (DARTS' ImageNet recipe, 48 channels, 14 cells):
#   nni-decouple train dots_imagenet --dataset imagenet --data-root IMAGENET_DIR
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH; none: model.backbone.init_cfg=None.
# Check a backbone first on a few images: add --smoke.
#
# Another backbone is one change: model.backbone.model (an nd_* preset, a timm model or a genotype
# file); `nni-decouple transfer` sets the FPN's in_channels to that backbone's channels.
_base_ = ['mmdet::cityscapes/mask-rcnn_r50_fpn_1x_cityscapes.py']

custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type='NNIDecoupleBackbone',
        model='nd_dots_imagenet',
        out_indices=(0, 1, 2, 3),
        frozen_stages=0,
        norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='runs/train-dots_imagenet-imagenet/model.pth')),
    neck=dict(in_channels=[48, 192, 384, 768]))

# The upstream config starts from a COCO-trained Mask R-CNN with a ResNet-50; those weights do not
# fit this backbone, which starts from its ImageNet weights (init_cfg) instead.
load_from = None

# Evaluation: COCO bbox and segm AP on the Cityscapes instance json (the AP that D-DARTS and the
# other NAS papers report for Mask R-CNN on Cityscapes). The upstream config adds the official
# Cityscapes instance AP (CityScapesMetric), which needs cityscapesscripts; that package calls
# numpy.in1d, gone since numpy 2.4, so it is left out here.
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file='data/cityscapes/annotations/instancesonly_filtered_gtFine_val.json',
    metric=['bbox', 'segm'],
    backend_args=None)
test_evaluator = val_evaluator
