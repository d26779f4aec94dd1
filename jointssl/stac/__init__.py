"""STAC access: a retrying, counting pystac-client (``client``), searches that page, retry and cache
(``search``), and reading the facts jointssl needs out of real-world item JSON (``items``)."""
