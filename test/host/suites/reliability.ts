// Forks taken again and again while pgbench writes to the source: every fork must start, pass
// pg_amcheck (heap and every index, checksums on), keep pgbench's balances whole, and hold every
// transaction committed before its fork began: a stamp row committed just before each fork call
// is the witness, and so is every stamp before it.
import { amcheck, clearHost, PG_BIN, pgbench, query, SparksLabHost } from "../labHost";

const PAIRS = 6;

/** Runs on the shared host (test/host/databases.test.ts), which it leaves with no instance. */
export function reliabilitySuite(sharedHost: () => SparksLabHost): void {
    describe("forks under write load", () => {
        let host: SparksLabHost;
        let srcUri: string;
        const srcPassword = "reliability-source";
        const forkPassword = "reliability-fork";
        const readyMs: number[] = [];

        beforeAll(async () => {
            host = sharedHost();
            const src = await host.sparkPg("new src --password-stdin", `${srcPassword}\n`);
            srcUri = src.uri;
            await host.ok(pgbench(src.port, "-i -q -s 10 spark"));
            await host.ok("spark-pg connect src --psql", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO spark;\n");
            await query(srcUri, srcPassword, "CREATE TABLE stamps (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())");
        });

        afterAll(async () => {
            const sorted = [...readyMs].sort((a, b) => a - b);
            console.log(`fork under load, ready ms (spark-pg's own measure): median ${sorted[Math.floor(sorted.length / 2)]}, all ${JSON.stringify(readyMs)}`);
            await clearHost(host);
        });

        test(`${2 * PAIRS} forks while pgbench writes: each starts, passes pg_amcheck and holds every earlier commit`, async () => {
            const port = (await host.sparkPg("status src")).port;
            // pgbench in 10 s rounds until told to stop, so the load ends with the forks; -n: no
            // vacuum, so pgbench_history is never truncated and its deltas keep adding up.
            const load = host.sh(`rm -f /tmp/stop-load; while [ ! -e /tmp/stop-load ]; do ${pgbench(port, "-n -c 2 -j 2 -T 10 spark")} || exit 1; done`);
            // A second writer stamps rows as fast as it can, so commits race every snapshot. It runs in
            // its own process group, ended by that group's id.
            const stamper = (await host.ok(`setsid bash -c 'while :; do echo "INSERT INTO stamps DEFAULT VALUES;"; done | runuser -u postgres -- ${PG_BIN}/psql -q -h /run/postgresql -p ${port} -d spark' >/dev/null 2>&1 & echo $!`)).trim();
            try {
                await new Promise((resolve) => setTimeout(resolve, 3000));
                // Forks come in pairs, the second right after the first: the first finds WAL piled up
                // since the source's last checkpoint and checkpoints it, the second finds little and
                // leaves crash recovery to replay it. Both paths must keep every commit.
                for (let i = 1; i <= PAIRS; i++) {
                    const forks: { fork: any; witness: number }[] = [];
                    for (const name of [`f${i}a`, `f${i}b`]) {
                        const [{ id: witness }] = await query(srcUri, srcPassword, "INSERT INTO stamps DEFAULT VALUES RETURNING id::int");
                        const fork = await host.sparkPg(`fork src ${name} --password-stdin`, `${forkPassword}\n`);
                        readyMs.push(fork.ready_ms);
                        expect(fork).toMatchObject({ name, source: "src", state: "running", hot: true });
                        forks.push({ fork, witness });
                    }
                    for (const { fork, witness } of forks) {
                        // Every id up to the witness was committed before the fork began: all must be there.
                        const [held] = await query(fork.uri, forkPassword,
                            `SELECT count(*)::int AS n, max(id)::int AS top FROM stamps WHERE id <= ${witness}`);
                        const [expected] = await query(srcUri, srcPassword, `SELECT count(*)::int AS n FROM stamps WHERE id <= ${witness}`);
                        expect(held).toEqual({ n: expected.n, top: witness });

                        const [whole] = await query(fork.uri, forkPassword, `SELECT
                            (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
                            AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(tbalance) FROM pgbench_tellers)
                            AND (SELECT coalesce(sum(delta), 0) FROM pgbench_history) = (SELECT sum(tbalance) FROM pgbench_tellers) AS ok`);
                        expect(whole).toEqual({ ok: true });
                        await host.ok(amcheck(fork.port));
                        await host.sparkPg(`destroy ${fork.name}`);
                    }
                }
            } finally {
                await host.sh(`kill -- -${stamper}; touch /tmp/stop-load`);
            }
            const result = await load;
            // pgbench ran throughout, its source never disturbed by the forks.
            expect(result.code).toBe(0);
            expect(result.stdout).toMatch(/number of failed transactions: 0/);
            expect(result.stdout).not.toMatch(/number of failed transactions: [1-9]/);
            await host.ok(amcheck(port));
        });
    });
}
