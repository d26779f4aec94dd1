# The jointssl image: Ray 2.60.0 on Python 3.11 with the pinned dependency set and this project. One
# image runs Ray heads and workers (RayCluster, RayJobs), the MLflow server and the scheduler CronJob.
#   docker build -t REGISTRY/jointssl:0.1.0-cpu .                            # CPU pods
#   docker build --build-arg RAY_VARIANT=gpu -t REGISTRY/jointssl:0.1.0-gpu .  # GPU workers
# RAY_VARIANT picks the Ray base image: cpu (Ubuntu) or gpu (Ray's CUDA build). torch brings its own CUDA
# 13 runtime either way (nvidia-* wheels in the lock file); GPU nodes need an NVIDIA driver for CUDA 13.
# Building and pushing: docs/operations.md, "Container image".
ARG RAY_VERSION=2.60.0
ARG RAY_VARIANT=cpu
FROM rayproject/ray:${RAY_VERSION}-py311-${RAY_VARIANT}

# Jobs run from here: 'python jobs/<job>.py --config configs/<file>.yaml' finds both directories.
WORKDIR /home/ray/jointssl

# 1. Dependencies, the slow layer that changes only with the lock file: jointssl's runtime requirements
#    (rustac, the embedded STAC API jobs serve world catalogs with, among them; not its test and platform
#    tools), at exactly the lock file's versions, installed against an empty stand-in of the package
#    (scripts/setup.sh --demo installs the same set).
COPY --chown=1000:100 requirements/lock-py311-linux.txt requirements/
COPY --chown=1000:100 pyproject.toml README.md ./
RUN mkdir jointssl && touch jointssl/__init__.py \
 && pip install --no-cache-dir --constraint requirements/lock-py311-linux.txt . \
 && pip uninstall --yes jointssl \
 && rm -rf jointssl build ./*.egg-info

# 2. The project: the library, the job entrypoints and the configs.
COPY --chown=1000:100 jointssl jointssl/
COPY --chown=1000:100 jobs jobs/
COPY --chown=1000:100 configs configs/
RUN pip install --no-cache-dir --no-deps . \
 && rm -rf build ./*.egg-info

# The Ray image's user 'ray' by number: Kubernetes can only verify runAsNonRoot for a numeric user.
USER 1000
ENV PYTHONUNBUFFERED=1
