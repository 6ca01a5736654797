-- pgbench script: the bare durable row cycle a lock needs, two autocommit statements (two
-- commits, each flushed to the WAL): insert the key's row if absent, then delete it.
-- bench/run.sh creates the table first and runs it with `pgbench -n -c 1 -T SECONDS -f`.
INSERT INTO bench_pgbench_rows VALUES ('k', 1) ON CONFLICT DO NOTHING;
DELETE FROM bench_pgbench_rows WHERE key = 'k';
