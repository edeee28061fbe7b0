"""Outbound delivery: routing, the SMTP client, retries, DSNs and the delivery agent.

Pure protocol logic (:mod:`.replies`, :mod:`.retry`, :mod:`.dsn`, the decisions in
:mod:`.routing`) is separate from I/O (:mod:`.client`, :mod:`.agent`).
"""
