"""History: where couriers have been, for the trail window and playback (placeholder docstring)."""
