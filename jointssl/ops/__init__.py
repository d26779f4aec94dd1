"""Operations on a Kubernetes cluster: the only cluster-aware corner of jointssl (see ``rayjob``).

Nothing in the library imports this package; only ``jointssl schedule`` does, inside its ``run``.
"""
