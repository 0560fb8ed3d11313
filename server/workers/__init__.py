"""The GPU worker processes (`worker.py`), their supervisor, and the loops that outlive failures (`resilience.py`)."""
