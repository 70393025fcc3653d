"""mixlab: decide what a language model is pre-trained on."""

__version__ = "0.1.0"
