"""Local development stack: installs, starts, probes and stops the real servers the platform needs."""
