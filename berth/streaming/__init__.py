"""The streaming broker: run events from workers to API subscribers, plus signals."""
