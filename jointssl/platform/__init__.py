"""The local platform of real services, and the embedded STAC API used when there is none.

``stack`` brings up SeaweedFS (``seaweedfs``), PostgreSQL + PostGIS (``postgres``), the STAC API
(``stac_api``), MLflow (``mlflow_server``) and a Ray head (``ray_head``), each a :class:`Service`
(``service``) running as a :class:`ManagedProcess` (``process``) under one home directory
(``settings``, ``credentials``). ``rustac`` serves STAC files with no setup at all, so every command
searches through pystac-client whether or not a platform runs.

Nothing is imported here: ``jointssl --help`` stays instant.
"""
