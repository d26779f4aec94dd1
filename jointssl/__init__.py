"""jointssl: joint multi-modal self-supervised pre-training of remote-sensing encoders, and methane
source classification at scale. The library knows nothing of clusters; ``jobs/`` and ``k8s/`` do."""

__version__ = "0.1.0"
