# DeepLabV3, 80k iterations, batch 4 GPUs x 2, Cityscapes semantic segmentation on 512x1024 crops,
# with the DOTS ImageNet network as the backbone. Everything except the backbone is mmseg's
# deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024 (data: leftImg8bit/ and gtFine/ with the
# *_gtFine_labelTrainIds.png maps that cityscapesscripts' createTrainIdLabelImgs writes).
#
#   nni-decouple transfer configs/mmseg/deeplabv3_nd-dots-imagenet_4xb2-80k_cityscapes-512x1024.py \
#       --data-root data/cityscapes
#
# The backbone starts from its ImageNet weights at the default place, runs/train-dots_imagenet-imagenet/model.pth
# (relative to where you run), which this command writes (DARTS' ImageNet recipe, 48 channels, 14 cells):
#   nni-decouple train dots_imagenet --dataset imagenet --data-root IMAGENET_DIR
# Other weights: --cfg-options model.backbone.init_cfg.checkpoint=PATH; none: model.backbone.init_cfg=None.
# Check a backbone first on a few images: add --smoke.
#
# Another backbone is one change: model.backbone.model (an nd_* preset, a timm model or a genotype
# file); `nni-decouple transfer` sets the heads' in_channels to that backbone's channels.
_base_ = ['mmseg::deeplabv3/deeplabv3_r50-d8_4xb2-80k_cityscapes-512x1024.py']

custom_imports = dict(imports=['nni_decouple.mm'], allow_failed_imports=False)

model = dict(
    # The upstream ResNet-50 weights: this backbone loads its own through init_cfg.
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='NNIDecoupleBackbone',
        model='nd_dots_imagenet',
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type='Pretrained', checkpoint='runs/train-dots_imagenet-imagenet/model.pth')),
    # A DARTS network has no dilated variant, so ASPP reads stride 32 instead of ResNet-D8's stride 8:
    # its rates are the stride-8 rates (12, 24, 36) divided by 4.
    decode_head=dict(in_index=3, in_channels=768, dilations=(1, 3, 6, 9)),
    auxiliary_head=dict(in_index=2, in_channels=384))

# Like the upstream SyncBN ResNet: the backbone's BatchNorms synchronise across GPUs under DDP.
sync_bn = 'torch'
