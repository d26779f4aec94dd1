"""The deployable methane-source classifier (:mod:`.model`) and the model registry (:mod:`.registry`).

Import the submodules directly: this package imports nothing itself, so configs load without torch.
"""
