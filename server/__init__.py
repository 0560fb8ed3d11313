"""The server: contract adapters (Runware, RunComfy) on one task service, worker processes, delivery.

One folder per box of the architecture, data flowing down, never up (tests/unit/test_layers.py reads the rules from these
folders): api/ (one folder per contract or page, and their shared HTTP code) -> ops/ (health, metrics and media routes,
the background loops) -> workers/ (one process per GPU, calls ltx_runtime's engine; their supervisor) -> tasks/ (the
task service and the runtime's own job type) -> store/ (the durable task store) -> media/ (media store, guarded HTTP
client, deliveries: URL, uploadEndpoint, webhookURL). main.py is the `ltx-runtime` script, serve.py what `serve` runs,
app.py assembles the app; settings.py and logs.py serve every box.
"""
