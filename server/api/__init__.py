"""The HTTP side: one folder per contract or page (runware/, runcomfy/, playground/) and their shared HTTP code."""
