"""Training side of realtime-sed: torch + torchaudio. The runtime (`realtime_sed`) never imports this."""
