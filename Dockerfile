# A slim forget-guard image: CPU torch (for the embedding model), no GPU libraries, no model server inside.
# Built by deploy/compose.yaml (two replicas sharing PostgreSQL); `docker build -t forget-guard .` alone works too.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GUARD_MODEL_CACHE=/opt/forget-guard/models \
    GUARD_HOST=0.0.0.0 GUARD_PORT=8000 GUARD_INDEX_DIR=/data/index GUARD_POLICY_FILE=/app/policies/default.yaml

WORKDIR /app
# torch from the CPU index first, so the project's torch==2.13.0 pin is already met (no CUDA build)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY guard ./guard
COPY policies ./policies
RUN pip install . && useradd --create-home --uid 10001 guard && mkdir -p /data && chown guard /data
# export MiniLM to ONNX at build time, so replicas start in seconds (the registry may be PostgreSQL:
# GUARD_REGISTRY_DSN=postgresql://…; otherwise SQLite in /data/index)
# (and its int8 first stage, guard/pipeline/cascade.py)
RUN python -c "from pathlib import Path; from guard.forget.embedder import make_embedder; \
[make_embedder(m, Path('/opt/forget-guard/models')).embed(['ready']) for m in ('minilm', 'minilm-fast')]"
USER guard
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["guard", "serve"]
