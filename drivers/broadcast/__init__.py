"""Radio bulletins: authoring, schedule, Vietnamese speech, zones (sound card, RTP, HTTP push), as-run log."""
