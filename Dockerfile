# A slim forget-guard image: CPU torch (for the embedding model), no GPU libraries, no model server inside.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    GUARD_HOST=0.0.0.0 GUARD_PORT=8000 GUARD_INDEX_DIR=/data/index GUARD_POLICY_FILE=/app/policies/default.yaml

WORKDIR /app
# torch from the CPU index first, so the project's torch==2.13.0 pin is already met (no CUDA build)
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY pyproject.toml README.md ./
COPY guard ./guard
COPY policies ./policies
RUN pip install . && useradd --create-home --uid 10001 guard && mkdir -p /data && chown guard /data
USER guard
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
ENTRYPOINT ["guard", "serve"]
