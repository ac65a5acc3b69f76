"""The shared kernel: wire models and statuses, the error tree, encoders and ids, webhook
signatures and `verify`, target names and retry backoff. Every room may import it; it imports
no other room."""
