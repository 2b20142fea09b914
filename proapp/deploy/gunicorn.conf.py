"""gunicorn settings for proapp (``gunicorn -c proapp/deploy/gunicorn.conf.py wsgi:app``).

Sync workers: each request is short and holds one database connection; two or three per core. The SMS worker
is NOT started here: it is its own process (``proapp worker``)."""

import multiprocessing
import os
import re

from gunicorn.glogging import Logger

from proapp import PROJECT_ROOT
from proapp.config import env_setting  # the settings table (proapp config-table) lists these too

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
# No query strings in the access log; link tokens (SMS links are /s/<token>) are written /s/[redacted].
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(L)ss'


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
