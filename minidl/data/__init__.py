"""Data: datasets read from their official formats (or from small samples bundled with minidl),
a DataLoader that batches them, and batch transforms.

    from minidl.data import FashionMNIST, OxfordPets, DataLoader, RandomHorizontalFlip
    train = OxfordPets(split="trainval", target="pet")          # bundled 64x64 sample
    loader = DataLoader(train, batch_size=16, shuffle=True, seed=0,
                        transform=RandomHorizontalFlip(seed=0))
    for images, masks in loader:   # images: Tensor (16, 3, 64, 64) float32, masks: (16, 64, 64) int64
        ...
"""

from .dataset import ArrayDataset, stratified_split
from .fashion_mnist import FashionMNIST
from .loader import DataLoader
from .oxford_pets import IGNORE_INDEX, OxfordPets
from .transforms import Compose, Normalize, RandomHorizontalFlip

__all__ = ["ArrayDataset", "stratified_split", "FashionMNIST", "OxfordPets", "IGNORE_INDEX", "DataLoader",
           "Compose", "Normalize", "RandomHorizontalFlip"]
