"""The national monitoring room's dashboard: a web application over ClickHouse (read-only).

`cctv dashboard` (or `python -m services.dashboard`) serves it on dashboard.host:port. The
figures come from cctv/figures.py; the pages, their scripts, style sheets, the uPlot chart
library and the Sarabun font ship in this package (templates/, static/): it works offline.
"""
