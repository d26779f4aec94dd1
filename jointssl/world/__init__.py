"""The synthetic multi-sensor world (issue #3): sites, latent scenes, sensor physics, COG + STAC publishing.

Modules: ``sites`` (where and what), ``materials`` (spectra and backscatter as data), ``canvas`` /
``facilities`` / ``scene`` (the latent ground), ``acquisitions`` (when and from where sensors look),
``aerial`` / ``multispectral`` / ``sar`` (sensor physics driven by the sensor preset), ``cog`` and
``catalog`` (publishing), ``publish`` (orchestration), ``reader``, ``contact_sheet``, ``learnability``.
Nothing is imported here, so ``import jointssl.world`` stays cheap.
"""
