"""The ingest: the HTTP edge phones post their fixes to (docs/ingest.md)."""
