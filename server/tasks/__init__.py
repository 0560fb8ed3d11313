"""The task service (`service.py`) and the runtime's own job type and error kinds (`jobs.py`); it knows no contract."""
