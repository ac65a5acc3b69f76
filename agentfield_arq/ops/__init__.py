"""Operations: the `agentfield-arq` command (run, api, worker, redis, redis-cli,
webhook-receiver), the embedded valkey-server and the process supervisor. May import any room."""
