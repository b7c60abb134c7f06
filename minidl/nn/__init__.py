"""``minidl.nn``: Module, Parameter, layers, losses and ``minidl.nn.init``, with PyTorch's names."""

from . import init
from .activation import ReLU, Sigmoid
from .container import ModuleList, Sequential
from .conv import Conv2d, ConvTranspose2d
from .dropout import Dropout, Dropout2d
from .flatten import Flatten
from .linear import Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, DiceLoss
from .module import Module, Parameter
from .normalization import BatchNorm2d
from .pooling import AdaptiveAvgPool2d, MaxPool2d, MaxUnpool2d
from .upsample import Upsample

__all__ = ["init", "Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "MaxPool2d", "MaxUnpool2d",
           "AdaptiveAvgPool2d", "BatchNorm2d", "ReLU", "Sigmoid", "Dropout", "Dropout2d", "Flatten", "Upsample",
           "Sequential", "ModuleList", "CrossEntropyLoss", "BCEWithLogitsLoss", "DiceLoss"]
