// spark-pg on a real lab host (systemd, btrfs, PostgreSQL 15), as a lifecycle: an instance, forks
// of it idle, under pgbench, cold and of a fork, the JSON every verb prints, bad input that must
// change nothing, restarts that keep ports, destroy with and without forks, and nothing left.
import { amcheck, clearHost, connect, PG_BIN, PG_ROOT, pgbench, POOL, query, SparksLabHost } from "../labHost";

const LIST_KEYS = ["created", "enabled", "expires", "name", "owner", "port", "protected", "source", "source_snapshot", "state", "uri"];
const STATUS_KEYS = [...LIST_KEYS, "path", "restarts", "size", "snapshots"].sort();
const PORTS = { first: 5432, last: 5499 };
/** The URI spark-pg prints for a port: clients verify the host's certificate. */
const uriOf = (port: number) => `postgresql://spark@10.89.42.11:${port}/spark?sslmode=verify-full`;

/** Runs on the shared host (test/host/databases.test.ts), which it leaves with no instance. */
export function lifecycleSuite(sharedHost: () => SparksLabHost): void {
    describe("spark-pg on a lab host", () => {
        let host: SparksLabHost;
        const password: Record<string, string> = {};
        const ports: Record<string, number> = {};
        const timings: Record<string, number> = {};

        /** What must not change when a verb is refused: instances, their ports, states and data dirs. */
        async function snapshotOfInstances(): Promise<string> {
            const list = await host.sparkPg("list");
            const subvolumes = await host.ok(`btrfs subvolume list -o ${PG_ROOT} | awk '{print $NF}' | sort`);
            return JSON.stringify({ list, subvolumes });
        }

        /** new or fork with a fresh password; records password and port; returns the JSON. */
        async function make(verb: string, name: string): Promise<any> {
            password[name] = `pw-${name}-${Math.random().toString(36).slice(2)}`;
            const started = Date.now();
            const made = await host.sparkPg(`${verb} --password-stdin`, `${password[name]}\n`);
            // Ready means a client gets in with the new password at once, from another machine.
            const rows = await query(made.uri, password[name], "SELECT current_user AS who");
            timings[name] = Date.now() - started;
            expect(rows).toEqual([{ who: "spark" }]);
            ports[name] = made.port;
            return made;
        }

        beforeAll(async () => {
            host = sharedHost();
        });

        afterAll(async () => {
            console.log(`spark-pg ready times, command start to first query (ms): ${JSON.stringify(timings)}`);
            await clearHost(host);
        });

        test("version and help", async () => {
            expect((await host.ok("spark-pg version")).trim()).toMatch(/^\d+\.\d+\.\d+$/);
            expect(await host.sparkPg("version")).toEqual({ version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
            const help = await host.ok("spark-pg help");
            for (const verb of ["new", "fork", "connect", "status", "list", "destroy", "start", "stop", "cert", "version", "help",
                "snapshot", "snapshots", "drop-snapshot", "rollback", "reset", "protect", "unprotect", "expire", "df"]) {
                expect(help).toMatch(new RegExp(`^  ${verb} +\\S`, "m"));
            }
            expect(await host.ok("spark-pg help fork")).toMatch(/^Usage: spark-pg fork SOURCE\[@SNAPSHOT\] NAME/);
        });

        test("new makes a running instance with checksums, role spark and database spark", async () => {
            const made = await make("new alpha", "alpha");
            expect(Object.keys(made).sort()).toEqual([...LIST_KEYS, "adopted", "ready_ms"].sort());
            expect(made).toMatchObject({ name: "alpha", state: "running", enabled: true, source: null, port: PORTS.first, owner: null, adopted: false });
            expect(made.uri).toBe(uriOf(PORTS.first));
            expect(made.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
            expect((await host.ok(`systemctl is-active spark-pg@alpha; systemctl is-enabled spark-pg@alpha`)).split("\n")).toEqual(["active", "enabled", ""]);

            const rows = await query(made.uri, password.alpha, `
                SELECT current_setting('data_checksums') AS checksums, current_setting('password_encryption') AS enc,
                       (SELECT rolcreatedb AND NOT rolsuper FROM pg_roles WHERE rolname = 'spark') AS createdb_only,
                       (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'spark') AS owner`);
            expect(rows).toEqual([{ checksums: "on", enc: "scram-sha-256", createdb_only: true, owner: "spark" }]);
            await expect(query(made.uri, "wrong password", "SELECT 1")).rejects.toThrow(/password authentication failed/);
            await query(made.uri, password.alpha, "CREATE TABLE marks (id int PRIMARY KEY, note text); INSERT INTO marks SELECT g, 'alpha' FROM generate_series(1, 1000) g");
        });

        test("connect prints the URI and its parts; --psql opens psql on the socket", async () => {
            expect((await host.ok("spark-pg connect alpha")).trim()).toBe(uriOf(ports.alpha));
            expect(await host.sparkPg("connect alpha")).toEqual({
                name: "alpha", uri: uriOf(ports.alpha),
                host: "10.89.42.11", port: ports.alpha, user: "spark", database: "spark",
            });
            expect((await host.ok("spark-pg connect alpha --psql", "SELECT count(*) FROM marks;\n")).trim()).toMatch(/\b1000\b/);
        });

        test("fork of an idle instance: its data, its own port and password, the source's refused", async () => {
            const fork = await make("fork alpha beta", "beta");
            expect(Object.keys(fork).sort()).toEqual([...LIST_KEYS, "adopted", "hot", "ready_ms"].sort());
            expect(fork).toMatchObject({ name: "beta", source: "alpha", state: "running", hot: true });
            expect(fork.port).not.toBe(ports.alpha);
            expect(await query(fork.uri, password.beta, "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 1000 }]);
            await expect(query(fork.uri, password.alpha, "SELECT 1")).rejects.toThrow(/password authentication failed/);
            // Writable and independent both ways.
            await query(fork.uri, password.beta, "UPDATE marks SET note = 'beta'");
            await query(uriOf(ports.alpha), password.alpha, "INSERT INTO marks VALUES (1001, 'alpha only')");
            expect(await query(fork.uri, password.beta, "SELECT count(*)::int AS n, min(note) AS note FROM marks")).toEqual([{ n: 1000, note: "beta" }]);
            expect(await query(uriOf(ports.alpha), password.alpha,
                "SELECT count(*)::int AS n FROM marks WHERE note = 'alpha' OR note = 'alpha only'")).toEqual([{ n: 1001 }]);
        });

        test("fork of a fork", async () => {
            const fork = await make("fork beta gamma", "gamma");
            expect(fork.source).toBe("beta");
            expect(await query(fork.uri, password.gamma, "SELECT count(*)::int AS n, min(note) AS note FROM marks")).toEqual([{ n: 1000, note: "beta" }]);
        });

        test("fork while pgbench writes to the source: starts, passes pg_amcheck, holds what was committed before", async () => {
            await host.ok(pgbench(ports.alpha, "-i -q -s 20 spark"));
            await host.ok("spark-pg connect alpha --psql", "GRANT SELECT ON ALL TABLES IN SCHEMA public TO spark;\n");
            const load = host.sh(pgbench(ports.alpha, "-c 2 -j 2 -T 20 spark"));
            await new Promise((resolve) => setTimeout(resolve, 5000));
            const alphaUri = uriOf(ports.alpha);
            const [{ n: before }] = await query(alphaUri, password.alpha, "SELECT count(*)::int AS n FROM pgbench_history");
            expect(before).toBeGreaterThan(0);
            const fork = await make("fork alpha busy", "busy");
            expect(fork.hot).toBe(true);
            const [{ n: inFork }] = await query(fork.uri, password.busy, "SELECT count(*)::int AS n FROM pgbench_history");
            expect(inFork).toBeGreaterThanOrEqual(before);
            const result = await load;
            expect(result.stderr).not.toMatch(/FATAL|aborted/);
            expect(result.code).toBe(0);
            await host.ok(amcheck(fork.port));
            // The source's balances still add up in the fork: every transaction is whole.
            expect(await query(fork.uri, password.busy,
                "SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches) AS whole")).toEqual([{ whole: true }]);
        });

        test("fork of a stopped instance is a cold snapshot; the source stays stopped", async () => {
            const stopped = await host.sparkPg("stop gamma");
            expect(stopped).toMatchObject({ name: "gamma", state: "stopped", enabled: false, port: ports.gamma });
            const fork = await make("fork gamma cold", "cold");
            expect(fork.hot).toBe(false);
            expect(await query(fork.uri, password.cold, "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 1000 }]);
            expect((await host.sparkPg("status gamma")).state).toBe("stopped");
            await host.sparkPg("start gamma");
        });

        test("list and status --json", async () => {
            const list = await host.sparkPg("list");
            expect(list.map((i: any) => i.name)).toEqual(["alpha", "beta", "busy", "cold", "gamma"]);
            for (const item of list) {
                expect(Object.keys(item).sort()).toEqual(LIST_KEYS);
                expect(item).toMatchObject({ state: "running", enabled: true, port: ports[item.name] });
            }
            expect(Object.fromEntries(list.map((i: any) => [i.name, i.source])))
                .toEqual({ alpha: null, beta: "alpha", busy: "alpha", cold: "gamma", gamma: "beta" });

            const all = await host.sparkPg("status");
            expect(all.map((i: any) => i.name)).toEqual(list.map((i: any) => i.name));
            const busy = await host.sparkPg("status busy");
            expect(Object.keys(busy).sort()).toEqual(STATUS_KEYS);
            expect(busy.path).toBe(`${PG_ROOT}/busy`);
            expect(Object.keys(busy.size).sort()).toEqual(["exclusive", "shared", "total"]);
            // A fresh fork of a 300 MB database shares almost all of it with its source.
            expect(busy.size.total).toBeGreaterThan(250 * 1024 * 1024);
            expect(busy.size.shared + busy.size.exclusive).toBe(busy.size.total);
            expect(busy.size.shared).toBeGreaterThan(busy.size.exclusive);
            expect((await host.ok("spark-pg status busy")).split("\n")[0]).toBe("busy");
        });

        test("bad input is refused with one line and changes nothing", async () => {
            const before = await snapshotOfInstances();
            expect(await host.refused("fork nosuch delta")).toMatch(/no instance named 'nosuch'/);
            expect(await host.refused("fork alpha beta")).toMatch(/'beta' already exists/);
            expect(await host.refused("new alpha")).toMatch(/'alpha' already exists/);
            for (const name of ["'a;b'", "../x", "A", "x", "''", "'a b'", "a-", "'a/b'", "$(printf 'a%.0s' {1..33})", "'x\ny'"]) {
                expect(await host.refused(`new ${name}`)).toMatch(/invalid instance name/);
                expect(await host.refused(`fork alpha ${name}`)).toMatch(/invalid instance name/);
                expect(await host.refused(`fork ${name} delta`)).toMatch(/invalid instance name/);
                expect(await host.refused(`destroy ${name}`)).toMatch(/invalid instance name/);
            }
            expect(await host.refused("new -x")).toMatch(/usage: spark-pg new NAME/);
            expect(await host.refused("frobnicate")).toMatch(/no such verb/);
            expect(await host.refused("fork alpha")).toMatch(/usage: spark-pg fork SOURCE\[@SNAPSHOT\] NAME/);
            expect(await host.refused("new delta --password=x")).toMatch(/usage:/);
            expect(await host.refused("new delta --password-stdin", "")).toMatch(/no password on stdin/);
            expect(await host.refused("connect nosuch")).toMatch(/no instance named 'nosuch'/);
            expect(await host.refused("destroy nosuch")).toMatch(/no instance named 'nosuch'/);
            expect(await host.sparkPg("destroy nosuch --if-exists")).toEqual({ name: "nosuch", destroyed: false });
            expect(await snapshotOfInstances()).toBe(before);
        });

        test("no free port: a range the instances already hold is refused", async () => {
            const before = await snapshotOfInstances();
            const taken = Object.values(ports).sort((a, b) => a - b);
            await host.ok(`sed 's/^SPARK_PG_PORTS=.*/SPARK_PG_PORTS=${taken[0]}-${taken[1]}/' /etc/sparks/spark-pg.conf > /tmp/tiny.conf`);
            const line = (await host.sh("SPARK_PG_CONF=/tmp/tiny.conf spark-pg fork alpha delta")).stderr.trim();
            expect(line).toBe(`spark-pg fork: no free port in ${taken[0]}-${taken[1]}`);
            expect((await host.sh("SPARK_PG_CONF=/tmp/tiny.conf spark-pg new delta")).stderr.trim()).toBe(`spark-pg new: no free port in ${taken[0]}-${taken[1]}`);
            expect(await snapshotOfInstances()).toBe(before);
        });

        test("a port something else listens on is skipped", async () => {
            const free = await host.sparkPg("list").then((l: any[]) => {
                const used = new Set(l.map((i) => i.port));
                let p = PORTS.first;
                while (used.has(p)) p++;
                return p;
            });
            const squatter = (await host.ok(`python3 -c "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', ${free})); s.listen(); time.sleep(120)" >/dev/null 2>&1 & echo $!`)).trim();
            try {
                await host.ok(`for i in $(seq 50); do ss -Hltn 'sport = :${free}' | grep -q . && exit 0; sleep 0.1; done; exit 1`);
                const made = await make("new squat", "squat");
                expect(made.port).not.toBe(free);
            } finally {
                await host.ok(`kill ${squatter}`);
            }
            await host.sparkPg("destroy squat");
            delete ports.squat;
        });

        test("a full pool is refused before anything is made", async () => {
            const before = await snapshotOfInstances();
            // Leave 200 MiB free: under the 512 MiB spark-pg keeps in reserve.
            await host.ok(`avail=$(( $(stat -f -c '%a * %S' ${POOL}) )); fallocate -l $(( avail - 200 * 1048576 )) ${POOL}/filler`);
            try {
                expect(await host.refused("fork alpha delta")).toMatch(/^spark-pg fork: pool full: \d+ MiB free on .*, need 512 MiB$/);
                expect(await host.refused("new delta")).toMatch(/^spark-pg new: pool full/);
            } finally {
                await host.ok(`rm -f ${POOL}/filler`);
            }
            expect(await snapshotOfInstances()).toBe(before);
        });

        test("a fork that fails after its snapshot is rolled back", async () => {
            await make("new broken", "broken");
            // Without role spark, the fork cannot take its own password: it must not be left behind.
            await host.ok(`runuser -u postgres -- ${PG_BIN}/psql -h /run/postgresql -p ${ports.broken} -d postgres -c 'DROP DATABASE spark' -c 'DROP ROLE spark'`);
            const before = await snapshotOfInstances();
            expect(await host.refused("fork broken orphan")).toMatch(/could not reset the password of role spark on 'orphan'/);
            expect(await snapshotOfInstances()).toBe(before);
            expect((await host.sh("systemctl is-enabled spark-pg@orphan")).stdout.trim()).not.toBe("enabled");
            await host.sparkPg("destroy broken");
            delete ports.broken;
        });

        test("ports survive restarts and are never handed out while reserved", async () => {
            const alphaUri = uriOf(ports.alpha);
            await host.ok("systemctl restart spark-pg@alpha");
            expect((await host.sparkPg("status alpha")).port).toBe(ports.alpha);
            expect(await query(alphaUri, password.alpha, "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 1001 }]);

            // Stopped, its port stays reserved: a new instance gets another one.
            await host.sparkPg("stop alpha");
            const other = await make("new other", "other");
            expect(other.port).not.toBe(ports.alpha);
            await host.sparkPg("start alpha");
            expect(await query(alphaUri, password.alpha, "SELECT 1 AS one")).toEqual([{ one: 1 }]);

            // Boot: enabled instances are wanted by multi-user.target and come back on their ports (the
            // reload reads the enablement links afresh, as a boot does).
            await host.ok("systemctl stop 'spark-pg@*' && systemctl daemon-reload && systemctl start multi-user.target");
            const list = await host.sparkPg("list");
            for (const item of list) expect(item).toMatchObject({ state: "running", port: ports[item.name] });
            // And a crash of the postmaster is recovered from on the same port.
            await host.ok("systemctl kill --signal=SIGKILL --kill-whom=main spark-pg@beta; sleep 1; spark-pg start beta --json");
            const beta = await connect(uriOf(ports.beta), password.beta);
            expect((await beta.query("SELECT count(*)::int AS n FROM marks")).rows).toEqual([{ n: 1000 }]);
            await beta.end();
            await host.sparkPg("destroy other");
            delete ports.other;
        });

        test("destroy refuses while forks exist; --force destroys only the named instance", async () => {
            expect(await host.refused("destroy alpha")).toMatch(/'alpha' has forks \(beta busy\)/);
            expect(await host.refused("destroy beta")).toMatch(/'beta' has forks \(gamma\)/);
            expect((await host.sparkPg("status alpha")).state).toBe("running");

            expect(await host.sparkPg("destroy beta --force")).toEqual({ name: "beta", destroyed: true });
            const list = await host.sparkPg("list");
            expect(list.map((i: any) => i.name)).toEqual(["alpha", "busy", "cold", "gamma"]);
            // gamma was forked from beta: it keeps running, with its data and its record of where it came from.
            expect(list.find((i: any) => i.name === "gamma")).toMatchObject({ state: "running", source: "beta" });
            expect(await query(uriOf(ports.gamma), password.gamma, "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 1000 }]);
            // beta's port is free again: the next instance takes it.
            const again = await make("new again", "again");
            expect(again.port).toBe(ports.beta);
        });

        test("destroy everything leaves no instance, unit, subvolume or listener", async () => {
            for (const name of ["again", "cold", "gamma", "busy", "alpha"]) {
                expect(await host.sparkPg(`destroy ${name}`)).toEqual({ name, destroyed: true });
            }
            expect(await host.sparkPg("destroy alpha --if-exists")).toEqual({ name: "alpha", destroyed: false });
            expect(await host.sparkPg("list")).toEqual([]);
            expect(await host.sparkPg("status")).toEqual([]);
            expect((await host.ok("systemctl list-units --all --plain --no-legend 'spark-pg@*'")).trim()).toBe("");
            expect((await host.ok("ls /etc/systemd/system/multi-user.target.wants/ | grep spark-pg || true")).trim()).toBe("");
            expect((await host.ok(`btrfs subvolume list -o ${PG_ROOT}`)).trim()).toBe("");
            expect((await host.ok(`ss -Hltn | awk '{print $4}' | grep -E ':(${PORTS.first}|${PORTS.first + 1}|${PORTS.first + 2})$' || true`)).trim()).toBe("");
            expect((await host.ok(`pgrep -u postgres -f '${PG_BIN}/postgres' || true`)).trim()).toBe("");
        });
    });
}
