# One image for every role: the command picks api, worker or one of the example agents in
# examples/ (see compose.yaml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY agentfield_arq ./agentfield_arq
COPY api ./api
COPY workers ./workers
COPY examples ./examples
# /keys: where compose's `keys` service writes the API keys (its volumes take this ownership).
RUN pip install ".[server]" && useradd --system --uid 10001 agentfield \
    && mkdir -p /keys/agents && chown -R agentfield /keys && chmod -R 700 /keys

USER agentfield
EXPOSE 8080
CMD ["agentfield-arq", "api"]
