# Sample gunicorn settings for gridwatch:  gunicorn -c deploy/gunicorn.conf.py 'server:create_app()'
# Set GRIDWATCH_DATA to the data directory (the GeoPackage store lives there) before starting,
# and GRIDWATCH_STORE when the store is kept elsewhere (a .gpkg file).
import multiprocessing
import os

# Only this machine by default: put a reverse proxy (nginx, with HTTPS) in front, or set
# GRIDWATCH_BIND (e.g. 0.0.0.0:8000) to listen on other interfaces on purpose.
bind = os.environ.get("GRIDWATCH_BIND", "127.0.0.1:8000")
# Threads let a long upload or import in one request leave the other requests of the same
# worker free; several workers share the one store (SQLite serialises the writes).
workers = max(2, multiprocessing.cpu_count())
threads = 4
worker_class = "gthread"
timeout = 600  # imports of large surveys
limit_request_line = 8190
accesslog = "-"
