"""Jobs launched by sensors."""
