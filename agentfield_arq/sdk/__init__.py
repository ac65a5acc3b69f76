"""The agent SDK: `Agent` with its reasoners and skills, the agent's HTTP endpoint, its presence
on the control plane (register, heartbeat, goodbye) and its callbacks. Imports the kernel and
the client only."""
