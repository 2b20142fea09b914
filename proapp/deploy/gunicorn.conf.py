"""gunicorn settings for proapp (``gunicorn -c proapp/deploy/gunicorn.conf.py wsgi:app``).

Sync workers: each request is short and holds one database connection; two or three per core. The SMS worker
is NOT started here: it is its own process (``proapp worker``)."""

import multiprocessing
import os
import re

from gunicorn.glogging import Logger

# The settings table (proapp config-table) lists these settings too.
from proapp.config import PROJECT_ROOT, env_setting

bind = env_setting("BIND")                  # the reverse proxy (TLS) forwards here
workers = env_setting("WEB_WORKERS") or multiprocessing.cpu_count() * 2 + 1
worker_class = "sync"
timeout = 60                 # large exports stream; a request that takes longer is stuck
graceful_timeout = 30
keepalive = 5
max_requests = 2000          # recycle workers now and then (memory)
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
# One line per request: time, request ID (X-Request-ID, from the proxy or made by proapp), the client's address
# (X-Forwarded-For as set by the one trusted proxy), method, path, status, size, duration. No query strings; link
# tokens (SMS links are /s/<token>) are written /s/[redacted]. PROAPP_LOG_FORMAT=json: one JSON object a line.
if env_setting("LOG_FORMAT") == "json":
    access_log_format = ('{"time":"%(t)s","request_id":"%({x-request-id}o)s","client":"%({x-forwarded-for}i)s",'
                         '"peer":"%(h)s","method":"%(m)s","path":"%(U)s","status":%(s)s,"bytes":"%(B)s",'
                         '"seconds":%(L)s}')
else:
    access_log_format = '%(t)s %({x-request-id}o)s %({x-forwarded-for}i)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss'


class RedactingLogger(Logger):
    """gunicorn's logger, with proapp's token filter on the access and error logs (gunicorn's own error lines
    name the request's path, e.g. "Error handling request /s/...")."""

    def setup(self, cfg):
        super().setup(cfg)
        from proapp.logs import redact_logger

        redact_logger(self.access_log)
        redact_logger(self.error_log)


logger_class = RedactingLogger
forwarded_allow_ips = env_setting("FORWARDED_ALLOW_IPS")
# gunicorn's control socket (gunicornc) defaults to one path per user (~/.gunicorn/gunicorn.ctl): two instances
# of one host would share it. One per instance, named after its address, in systemd's RuntimeDirectory (the
# units set it) or else the instance folder.
_runtime = (os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
            or str(PROJECT_ROOT / env_setting("INSTANCE_PATH")))
control_socket = os.path.join(_runtime, "gunicorn-" + re.sub(r"[^A-Za-z0-9.]+", "_", bind) + ".ctl")

# /metrics: the request counters of every gunicorn process, shared through one folder per instance
# (prometheus_client's multiprocess mode), emptied at start; a process that exits leaves its gauges behind.
_metrics_dir = os.path.join(_runtime, "prometheus-" + re.sub(r"[^A-Za-z0-9.]+", "_", bind))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir


def on_starting(server):
    import shutil

    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid, _metrics_dir)
