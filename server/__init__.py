"""The server: contract adapters (Runware, RunComfy) on one task service, worker processes, delivery.

Layers (data flows down, never up): runware/, runcomfy/ (wire contracts) -> service (the task service, jobs: the
runtime's own job type) -> tasks (durable store) -> worker (one process per GPU, calls ltx_runtime's engine) -> media
store and delivery (URL, uploadEndpoint, webhookURL). app.py assembles the routers, operations.py and loops.py.
"""
