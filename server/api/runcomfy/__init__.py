"""The RunComfy model API (shared/seeds/004): submit, status, result and cancel of LTX-2 video requests."""
