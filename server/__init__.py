"""The Runware-compatible server: contract adapters, task service, worker processes, delivery.

Layers (data flows down, never up): runware/ (wire contract) -> tasks (durable store) -> worker (one process per
GPU, calls ltx_runtime's engine) -> media store and delivery (URL, uploadEndpoint, webhookURL).
"""
