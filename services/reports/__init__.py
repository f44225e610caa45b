"""Governors' status reports: `cctv report province TH-xx --date …` and `cctv report national`.

One self-contained HTML file per report (inline CSS and charts, the Sarabun font embedded, an A4
print style sheet), in Thai with English alongside and B.E. dates, and CSV files with the same
figures. The figures are cctv/figures.py's -- the dashboard's -- read as a snapshot at the end
of the report's day (campaign timezone), or now for today.
"""
