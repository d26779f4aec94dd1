"""Per-modality encoders (``encoder``), projector heads (``projector``), the joint multi-modal encoder
(``multimodal``) and their configuration (``config``).

Only the configuration is imported here: loading a job config must not pull in torch and timm
(seconds), so import the modules that need them directly, e.g. ``from jointssl.models.multimodal import
MultiModalEncoder``.
"""

from jointssl.models.config import ModelConfig, ObjectiveConfig

__all__ = ["ModelConfig", "ObjectiveConfig"]
