"""The control plane's core: settings, Redis keys and Lua scripts, the execution rules and their
store, the node registry, the runner that calls agents, the webhook outbox and its delivery, and
the bridge to arq. Imports the kernel only; `api/` and `workers/` are thin adapters over it."""
