"""The Runware `videoInference` contract: REST and WebSocket."""
