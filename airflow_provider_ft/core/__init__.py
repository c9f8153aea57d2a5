"""The pure core: every multi-step decision as plain data in, requests out, driven by two thin drivers."""
