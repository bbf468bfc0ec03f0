"""What a run reports: the JSON run report, its Markdown summary and HTML report, and the redaction of every
secret the run knows from all of them."""
