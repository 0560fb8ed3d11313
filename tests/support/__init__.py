"""Helpers the test layers share: real servers and processes (server_harness, postgres_harness, s3_server), loopback
HTTP servers (loopback, receiver), the app in process (in_process), /proc look-ups (processes), fuzz strategies."""
