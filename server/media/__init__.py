"""Media: where results and images are kept (`store.py`), the SSRF-guarded HTTP client, deliveries."""
