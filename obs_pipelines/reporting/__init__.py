"""Reporting: SLIs derived at ingest, the SQL reports published in the catalog, the HTML
report and its exports, and the sandbox for ad hoc queries."""
