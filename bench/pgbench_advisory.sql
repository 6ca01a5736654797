-- pgbench script: one pg_advisory_lock/pg_advisory_unlock cycle (session lock: nothing durable).
-- bench/run.sh runs it with `pgbench -n -c 1 -T SECONDS -f`; one transaction = one cycle.
SELECT pg_advisory_lock(4242);
SELECT pg_advisory_unlock(4242);
