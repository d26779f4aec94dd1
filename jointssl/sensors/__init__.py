"""Sensor facts as data, keyed by STAC collection id (``spec``), and the presets that hold them (``registry``)."""

from jointssl.sensors.registry import PRESETS, load_preset, select
from jointssl.sensors.spec import Band, ItemFilter, Modality, QualityMask, TimePolicy

__all__ = ["PRESETS", "Band", "ItemFilter", "Modality", "QualityMask", "TimePolicy", "load_preset", "select"]
