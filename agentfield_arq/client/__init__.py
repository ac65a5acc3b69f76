"""The client: `AsyncClient` and `Client`, the requests they send and how their answers decode,
and the shared poll loop behind `wait`. Imports the kernel only."""
