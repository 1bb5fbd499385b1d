"""Convolution and pooling blocks: native, im2col ("each kernel a patch classifier"), pooling as routing."""

from .block import ConvPoolBlock
from .compose import compose_conv_kernels, receptive_field
from .conv import conv2d_im2col, conv2d_toeplitz_matrix
from .patch import PatchClassifier, from_linear_classifier, image_patches, patch_classifier
from .pooling import avgpool_plan, lse_pool, maxpool_plan, pool_from_plan

__all__ = [
    "ConvPoolBlock",
    "PatchClassifier",
    "avgpool_plan",
    "compose_conv_kernels",
    "conv2d_im2col",
    "conv2d_toeplitz_matrix",
    "from_linear_classifier",
    "image_patches",
    "lse_pool",
    "maxpool_plan",
    "patch_classifier",
    "pool_from_plan",
    "receptive_field",
]
