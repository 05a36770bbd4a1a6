"""Step classification: request -> StepProfile, with no network or model call."""
