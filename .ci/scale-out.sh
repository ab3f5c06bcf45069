#!/usr/bin/env bash
# Run the database- and worker-heavy tests against PostgreSQL and Redis
# (127.0.0.1:5432 trust auth, 127.0.0.1:6379), starting them if they are down.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! pg_isready -q -h 127.0.0.1 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
. .venv/bin/activate
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/walle"
export WALLE_REDIS_URL="redis://127.0.0.1:6379/0"
python -m pytest -p no:cacheprovider tests/test_configuration.py tests/test_workflow.py tests/integration/test_worker.py \
  tests/test_approval_rules.py tests/test_rollout_workflow.py tests/test_promote_wait.py tests/test_read_queries.py
# Several workers on separate data dirs, and health, metrics and log retention
# against PostgreSQL and Redis (the stage histogram's SQL differs per database).
python -m pytest -p no:cacheprovider tests/scale_out tests/test_health_endpoints.py tests/test_metrics_endpoint.py \
  tests/test_retention_logs.py
