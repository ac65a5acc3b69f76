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
RUN pip install ".[server]" && useradd --system --uid 10001 agentfield

USER agentfield
EXPOSE 8080
CMD ["agentfield-arq", "api"]
