"""The Textual dashboard of `realtime-sed listen`.

`app.SedDashboard` runs a `DetectionStream` in a worker thread and shows what it produces;
`app.run_dashboard(settings)` is the entry point the CLI uses when standard output is a terminal.
Textual is imported only when this package is, so the headless commands never load it.
"""
