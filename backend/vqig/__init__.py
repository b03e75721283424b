"""VQIG, the paper's vector-quantised image generator: a VQGAN codebook stage and a generator
stage that turns geometry-warped frames into refined ones (see generator.py)."""
from .checkpoint import load_codebook, load_generator, save_codebook, save_generator
from .config import CodebookConfig, GeneratorConfig
from .data import PlateData
from .generator import VQIGGenerator
from .train import TrainSettings, refine, train_codebook, train_generator
from .vqgan import VQGAN, PatchDiscriminator

__all__ = ["CodebookConfig", "GeneratorConfig", "PlateData", "VQGAN", "PatchDiscriminator", "VQIGGenerator",
           "TrainSettings", "train_codebook", "train_generator", "refine", "load_codebook", "load_generator",
           "save_codebook", "save_generator"]
