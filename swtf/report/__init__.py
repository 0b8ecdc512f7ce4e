"""The report: verdict statistics, plots and the HTML/Markdown pages built from a run's artifacts."""
