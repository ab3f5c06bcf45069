"""Real-host test infrastructure: sshd/nginx target hosts and a git server in namespaces."""
