"""Shared building blocks: the ST transformer and the vector quantizer."""

from genie.nn.st_transformer import Attention, KVCache, STBlock, STTransformer
from genie.nn.vq import VectorQuantizer, VQOutput

__all__ = ["Attention", "KVCache", "STBlock", "STTransformer", "VQOutput", "VectorQuantizer"]
