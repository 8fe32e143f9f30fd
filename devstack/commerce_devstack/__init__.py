"""Local development stack: installs, starts, probes and stops the platform's real servers."""
