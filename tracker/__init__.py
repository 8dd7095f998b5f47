"""The eSIM cancellation tracker: record a request, follow it up, verify it."""
