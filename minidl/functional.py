"""``minidl.functional`` (import as ``F``): every differentiable op, with PyTorch's names and signatures.

Each op is defined in ``minidl/ops/<family>.py`` as a ``Function`` (forward on arrays + backward rule)
and a public function that validates its arguments. This file only lists them.
"""

from .ops.activation import log_softmax, relu, sigmoid, softmax, tanh
from .ops.adaptive_pooling import adaptive_avg_pool2d
from .ops.conv import conv2d, conv_transpose2d
from .ops.dropout import dropout, dropout2d
from .ops.elementwise import abs, add, cast, clamp, div, exp, log, maximum, mul, neg, pow, sqrt, sub, where
from .ops.linalg import matmul
from .ops.loss import binary_cross_entropy_with_logits, cross_entropy, dice_loss, nll_loss
from .ops.normalization import batch_norm
from .ops.pooling import max_pool2d, max_unpool2d
from .ops.reduction import amax, max, mean, sum, var
from .ops.resize import center_crop, center_pad_or_crop, crop, interpolate
from .ops.shape import cat, flatten, getitem, pad, permute, reshape, stack, transpose

view = reshape
