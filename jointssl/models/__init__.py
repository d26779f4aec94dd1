"""Per-modality encoders, projector heads and the joint multi-modal encoder."""

from jointssl.models.config import ModelConfig, ObjectiveConfig
from jointssl.models.multimodal import ModalityInput, MultiModalEncoder, MultiModalOutput

__all__ = ["ModalityInput", "ModelConfig", "MultiModalEncoder", "MultiModalOutput", "ObjectiveConfig"]
