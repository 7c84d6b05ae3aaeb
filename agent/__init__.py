"""The busagent daemon: pure core, runtime I/O, control socket and the agentctl command."""
