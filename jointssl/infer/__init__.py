"""Batch inference: classify methane sources over whole areas and write GeoParquet."""
