// spark-pg's snapshots on a real lab host: named read-only snapshots, the migration-rollback
// workflow (a migration that fails halfway, rolled back), test fixtures (a fork of a snapshot
// reset 20 times, each reset timed), a fork reset to its source's current state, protection,
// forks that expire by the host's own timer, what each copy costs (status, df), and bad input
// that must be refused with one line and change nothing.
import { Client } from "pg";
import { clearHost, connect, PG_ROOT, query, SparksLabHost } from "../labHost";

const uriOf = (port: number) => `postgresql://spark@10.89.42.11:${port}/spark?sslmode=verify-full`;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Runs on the shared host (test/host/databases.test.ts), which it leaves with no instance. */
export function snapshotsSuite(sharedHost: () => SparksLabHost): void {
    describe("spark-pg snapshots, rollback and reset on a lab host", () => {
        let host: SparksLabHost;
        const password: Record<string, string> = {};
        const ports: Record<string, number> = {};

        /** Instances, snapshots and every subvolume under the pool's spark-pg root: what a refusal must not change. */
        async function everything(): Promise<string> {
            const list = await host.sparkPg("list");
            const snapshots = await Promise.all(list.map((i: { name: string }) => host.sparkPg(`snapshots ${i.name}`)));
            const subvolumes = await host.ok(`btrfs subvolume list -o ${PG_ROOT} | awk '{print $NF}' | sort; btrfs subvolume list -s ${PG_ROOT} | awk '{print $NF}' | sort`);
            return JSON.stringify({ list, snapshots, subvolumes });
        }

        async function make(verb: string, name: string): Promise<any> {
            password[name] = `pw-${name}-${Math.random().toString(36).slice(2)}`;
            const made = await host.sparkPg(`${verb} --password-stdin`, `${password[name]}\n`);
            ports[name] = made.port;
            return made;
        }

        const sql = (name: string, text: string) => query(uriOf(ports[name]), password[name], text);
        const count = async (name: string, table = "accounts") => (await sql(name, `SELECT count(*)::int AS n FROM ${table}`))[0].n;

        beforeAll(async () => {
            host = sharedHost();
            await make("new app", "app");
            await sql("app", "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL); INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 5000) g");
        });

        afterAll(async () => {
            await clearHost(host);
        });

        test("snapshot: read-only, named or dated, listed with its cost; the same owner's again is adopted, anyone else's refused", async () => {
            const snap = await host.sparkPg("snapshot app before-migration --owner t/app");
            expect(snap).toMatchObject({ name: "before-migration", instance: "app", owner: "t/app", hot: true, adopted: false });
            expect(snap.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
            expect(await host.sparkPg("snapshot app before-migration --owner t/app")).toMatchObject({ name: "before-migration", adopted: true, created: snap.created });
            expect(await host.refused("snapshot app before-migration")).toBe(`spark-pg snapshot: 'app' already has a snapshot 'before-migration' (taken ${snap.created})`);
            const dated = await host.sparkPg("snapshot app");
            expect(dated.name).toMatch(/^snap-\d{8}-\d{6}$/);
            // Read-only, as btrfs sees it: nothing (root included) writes into it.
            const path = `${PG_ROOT}/.snapshots/app/before-migration`;
            expect((await host.ok(`btrfs property get ${path} ro`)).trim()).toBe("ro=true");
            expect((await host.sh(`touch ${path}/x`)).code).not.toBe(0);
            expect((await host.ok(`stat -c '%U %a' ${PG_ROOT}/.snapshots ${PG_ROOT}/.snapshots/app`)).trim()).toBe("root 700\nroot 700");
            const listed = await host.sparkPg("snapshots app");
            expect(listed.map((s: any) => s.name)).toEqual(["before-migration", dated.name].sort());
            expect(listed[0]).toMatchObject({ instance: "app", state: "ok", forks: [], size: { total: expect.any(Number), exclusive: expect.any(Number) } });
            // Only what app changes after costs anything: right after, almost all of it is shared.
            expect(listed[0].size.shared).toBeGreaterThan(listed[0].size.total * 0.9);
            expect(await host.sparkPg(`drop-snapshot app ${dated.name}`)).toEqual({ name: dated.name, instance: "app", dropped: true });
            // The instance isn't in the list of instances twice, and .snapshots is no instance.
            expect((await host.sparkPg("list")).map((i: any) => i.name)).toEqual(["app"]);
        });

        test("migration rollback: a migration that fails halfway, rolled back to the snapshot in about a second", async () => {
            // A migration in steps, each its own transaction: the first two land, the third fails.
            const migration = ["ALTER TABLE accounts ADD COLUMN currency text", "UPDATE accounts SET balance = balance * 100, currency = 'EUR'",
                "CREATE UNIQUE INDEX accounts_currency ON accounts (currency)"];
            await sql("app", migration[0]);
            await sql("app", migration[1]);
            await expect(sql("app", migration[2])).rejects.toThrow(/could not create unique index "accounts_currency"/);
            expect(await sql("app", "SELECT sum(balance)::int AS total FROM accounts")).toEqual([{ total: 50_000_000 }]);

            // A session open on app is ended, and told why.
            const session: Client = await connect(uriOf(ports.app), password.app);
            const ended = new Promise<string>((resolve) => session.on("error", (e) => resolve(e.message)));
            // Without --force it only says what would be lost.
            expect(await host.refused("rollback app before-migration")).toMatch(/^spark-pg rollback: rollback of 'app' to 'before-migration' discards everything written to 'app' since \S+ and ends its sessions; run it again with --force/);
            expect(await count("app")).toBe(5000);
            const rolled = await host.sparkPg("rollback app before-migration --force");
            expect(rolled).toMatchObject({ name: "app", snapshot: "before-migration" });
            expect(rolled.disconnected).toBeGreaterThanOrEqual(1);
            console.log(`rollback of a 5000-row instance: ${rolled.ready_ms} ms`);
            expect(await ended).toMatch(/terminating connection due to administrator command/);
            await session.end().catch(() => undefined);
            // Back exactly: no column, the old balances; the same port and the same password.
            expect(await sql("app", "SELECT sum(balance)::int AS total, count(*)::int AS n FROM accounts")).toEqual([{ total: 500_000, n: 5000 }]);
            expect(await sql("app", "SELECT count(*)::int AS n FROM information_schema.columns WHERE table_name = 'accounts' AND column_name = 'currency'")).toEqual([{ n: 0 }]);
            expect((await host.sparkPg("status app")).port).toBe(ports.app);
            // The snapshot stays: the same rollback again works.
            await sql("app", "DELETE FROM accounts WHERE id > 4000");
            await host.sparkPg("rollback app before-migration --force");
            expect(await count("app")).toBe(5000);
        });

        test("a password changed after the snapshot is the one that works after a rollback", async () => {
            await host.sparkPg("snapshot app old-password");
            const newPassword = `pw-new-${Math.random().toString(36).slice(2)}`;
            await sql("app", `SET password_encryption = 'scram-sha-256'; ALTER ROLE spark PASSWORD '${newPassword}'`);
            const oldPassword = password.app;
            password.app = newPassword;
            await host.sparkPg("rollback app old-password --force");
            expect(await count("app")).toBe(5000);
            await expect(query(uriOf(ports.app), oldPassword, "SELECT 1")).rejects.toThrow(/password authentication failed/);
            await host.sparkPg("drop-snapshot app old-password");
        });

        test.each(["aside", "started"])("a rollback killed at step %s is undone by the next verb on the instance: nothing lost", async (step) => {
            await sql("app", "INSERT INTO accounts VALUES (9100, 5)");
            const killed = await host.sh(`SPARK_PG_FAULT=${step} spark-pg rollback app before-migration --force >/dev/null 2>&1; echo "status=$?"`);
            expect(killed.stdout).toMatch(/status=137/);
            const started = await host.sh("spark-pg start app --json");
            expect([started.code, started.stderr]).toEqual([0, "spark-pg: put 'app' back as it was before a rollback or reset that did not finish\n"]);
            expect(await count("app")).toBe(5001);
            expect((await host.ok(`ls -A ${PG_ROOT} | grep -c '^.replaced-' || true`)).trim()).toBe("0");
            await sql("app", "DELETE FROM accounts WHERE id = 9100");
        });

        test("test fixtures: a fork of a snapshot, reset to it 20 times, each test against fresh data", async () => {
            await sql("app", "UPDATE accounts SET balance = 7 WHERE id <= 10");
            await host.sparkPg("snapshot app fixture");
            await sql("app", "UPDATE accounts SET balance = 8 WHERE id <= 10");
            const fork = await make("fork app@fixture t1", "t1");
            expect(fork).toMatchObject({ name: "t1", source: "app", source_snapshot: "fixture", hot: false });
            const resets: number[] = [];
            for (let i = 0; i < 20; i++) {
                // The test: reads the fixture's data, then writes all over it.
                expect(await sql("t1", "SELECT count(*)::int AS n, sum(balance)::int AS total FROM accounts WHERE id <= 10")).toEqual([{ n: 10, total: 70 }]);
                await sql("t1", `DELETE FROM accounts WHERE id % 2 = 0; CREATE TABLE scratch${i} (x int)`);
                const started = Date.now();
                const reset = await host.sparkPg("reset t1");
                resets.push(Date.now() - started);
                expect(reset).toMatchObject({ name: "t1", source: "app", source_snapshot: "fixture" });
            }
            expect(await count("t1")).toBe(5000);
            expect(await sql("t1", "SELECT count(*)::int AS n FROM pg_tables WHERE tablename LIKE 'scratch%'")).toEqual([{ n: 0 }]);
            expect((await host.sparkPg("status t1")).port).toBe(ports.t1);
            console.log(`reset of a fixture fork, 20 cycles: median ${median(resets)} ms, range ${Math.min(...resets)}-${Math.max(...resets)} ms`);
            expect((await host.sparkPg("snapshots app")).find((s: any) => s.name === "fixture").forks).toEqual(["t1"]);
            // app's own data moved on, and the fixture did not.
            expect(await sql("app", "SELECT sum(balance)::int AS total FROM accounts WHERE id <= 10")).toEqual([{ total: 80 }]);
        });

        test("reset of a fork of an instance: a fresh fork of the source as it is now, same name, port and password", async () => {
            await make("fork app f2", "f2");
            await sql("f2", "DELETE FROM accounts");
            await sql("app", "INSERT INTO accounts VALUES (9001, 1)");
            expect(await host.sparkPg("reset f2")).toMatchObject({ name: "f2", source: "app", source_snapshot: null });
            expect(await count("f2")).toBe(5001);
            expect(await host.refused("reset app")).toBe("spark-pg reset: 'app' is not a fork, so it has nothing to be reset to (see spark-pg rollback)");
        });

        test("protect: destroy, reset and rollback refuse a protected database without --force; unprotect undoes it", async () => {
            expect(await host.sparkPg("protect f2")).toEqual({ name: "f2", protected: true });
            expect((await host.sparkPg("status f2")).protected).toBe(true);
            expect(await host.refused("destroy f2")).toBe("spark-pg destroy: 'f2' is protected; destroy it anyway with --force, or spark-pg unprotect f2 first");
            expect(await host.refused("reset f2")).toBe("spark-pg reset: 'f2' is protected; reset it anyway with --force, or spark-pg unprotect f2 first");
            await host.sparkPg("protect app");
            // Protection is named before what a rollback would lose (its --force would override both).
            expect(await host.refused("rollback app fixture")).toBe("spark-pg rollback: 'app' is protected; roll it back anyway with --force, or spark-pg unprotect app first");
            await host.sparkPg("unprotect app");
            await sql("f2", "DELETE FROM accounts WHERE id = 1");
            expect(await host.sparkPg("reset f2 --force")).toMatchObject({ name: "f2" });
            expect(await count("f2")).toBe(5001);
            expect(await host.sparkPg("unprotect f2")).toEqual({ name: "f2", protected: false });
        });

        test("forks with a TTL show when they expire, and the host's timer destroys them then, but not protected ones or ones with forks", async () => {
            const ttl = await make("fork app --ttl 8h tmp", "tmp");
            const inEightHours = Date.now() + 8 * 3600 * 1000;
            expect(Math.abs(Date.parse(ttl.expires) - inEightHours)).toBeLessThan(120_000);
            expect((await host.ok("spark-pg list")).split("\n").find((l) => l.startsWith("tmp "))).toContain(ttl.expires);
            await make("fork app --ttl 30m keep", "keep");
            await host.sparkPg("protect keep");
            await make("fork app --ttl 30m parent", "parent");
            await make("fork parent child", "child");
            // The host's timer runs every minute; held off while this test acts, so that only the run
            // it starts below does.
            expect((await host.ok("systemctl is-enabled spark-pg-expire.timer; systemctl is-active spark-pg-expire.timer")).split("\n")).toEqual(["enabled", "active", ""]);
            await host.ok("systemctl stop spark-pg-expire.timer");
            // Their time passes: set in their records, as the clock would.
            await host.ok(`for n in tmp keep parent; do sed -i 's/^EXPIRES=.*/EXPIRES=2020-01-01T00:00:00Z/' ${PG_ROOT}/$n/spark-pg.meta; done`);
            expect(await host.sparkPg("expire --dry-run")).toEqual({ expired: ["tmp"], kept: [
                { name: "keep", reason: "protected" }, { name: "parent", reason: "it has forks (child)" }] });
            expect((await host.sparkPg("status tmp")).state).toBe("running");
            // The timer's own service, as the timer runs it.
            await host.ok("systemctl start spark-pg-expire.service");
            expect((await host.sparkPg("list")).map((i: any) => i.name)).toEqual(["app", "child", "f2", "keep", "parent", "t1"]);
            expect(await host.ok("journalctl -u spark-pg-expire.service -o cat --no-pager | grep -E '^(destroyed|kept)'")).toBe(
                "kept keep past its expiry (2020-01-01T00:00:00Z): protected\nkept parent past its expiry (2020-01-01T00:00:00Z): it has forks (child)\ndestroyed tmp (expired 2020-01-01T00:00:00Z)\n");
            await host.ok("systemctl start spark-pg-expire.timer");
            for (const n of ["child", "parent"]) await host.sparkPg(`destroy ${n}`);
            await host.sparkPg("unprotect keep");
            await host.sparkPg("destroy keep");
        });

        test("status and df give each instance's, fork's and snapshot's cost, and the pool's free space", async () => {
            const status = await host.sparkPg("status app");
            expect(status.snapshots.map((s: any) => s.name)).toEqual(["before-migration", "fixture"]);
            for (const s of status.snapshots) expect(s.size.total).toBe(s.size.exclusive + s.size.shared);
            const df = await host.sparkPg("df");
            expect(df.items.map((i: any) => [i.name, i.kind, i.instance])).toEqual([
                ["app", "instance", null], ["before-migration", "snapshot", "app"], ["fixture", "snapshot", "app"],
                ["f2", "fork", null], ["t1", "fork", null]]);
            expect(df.pool).toMatchObject({ path: PG_ROOT, min_free: 512 * 1048576 });
            expect(df.pool.free).toBeGreaterThan(df.pool.min_free);
            expect(df.pool.used).toBeGreaterThan(df.items[0].exclusive);
            expect(await host.ok("spark-pg df")).toMatch(/^pool \/srv\/sparks\/pg: \d+ MiB, \d+ MiB used, \d+ MiB free \(spark-pg keeps 512 MiB free\)$/m);
        });

        test("bad input is refused with one line and changes nothing", async () => {
            const before = await everything();
            expect(await host.refused("rollback app nosuch --force")).toBe("spark-pg rollback: 'app' has no snapshot 'nosuch' (see spark-pg snapshots app)");
            expect(await host.refused("fork app@nosuch x1")).toBe("spark-pg fork: 'app' has no snapshot 'nosuch' (see spark-pg snapshots app)");
            expect(await host.refused("rollback nosuch fixture --force")).toBe("spark-pg rollback: no instance named 'nosuch'");
            expect(await host.refused("snapshot nosuch")).toBe("spark-pg snapshot: no instance named 'nosuch'");
            expect(await host.refused("drop-snapshot app nosuch")).toBe("spark-pg drop-snapshot: 'app' has no snapshot 'nosuch' (see spark-pg snapshots app)");
            expect(await host.sparkPg("drop-snapshot app nosuch --if-exists")).toEqual({ name: "nosuch", instance: "app", dropped: false });
            for (const ttl of ["8", "8x", "0h", "-1h", "1.5h", "367d", "'8h;id'", "''"]) {
                expect(await host.refused(`fork app x1 --ttl ${ttl}`)).toMatch(/^spark-pg fork: invalid --ttl '.*' \((want a whole number of m, h or d: 30m, 8h, 7d|at most 366d)\)$/);
            }
            for (const snap of ["'a;b'", "../x", "A", "x", "'a b'", "a-", "'a/b'"]) {
                expect(await host.refused(`snapshot app ${snap}`)).toMatch(/^spark-pg snapshot: invalid snapshot name/);
                expect(await host.refused(`fork app@${snap} x1`)).toMatch(/^spark-pg fork: invalid (snapshot|instance) name/);
            }
            expect(await host.refused("drop-snapshot app fixture")).toBe("spark-pg drop-snapshot: snapshot 'fixture' of 'app' has forks (t1) that reset to it; destroy them first or use --force");
            expect(await host.refused("destroy app --json")).toMatch(/^spark-pg destroy: 'app' has forks \(f2 t1\)/);
            expect(await host.refused("rollback")).toMatch(/^spark-pg rollback: usage: spark-pg rollback NAME SNAPSHOT/);
            expect(await everything()).toBe(before);
        });

        test("destroy with snapshots needs --force, which takes them too; nothing is left", async () => {
            await host.sparkPg("destroy t1");
            await host.sparkPg("destroy f2");
            expect(await host.refused("destroy app")).toBe("spark-pg destroy: 'app' has snapshots (before-migration fixture); drop them first (spark-pg drop-snapshot) or use --force");
            expect(await host.sparkPg("destroy app --force")).toEqual({ name: "app", destroyed: true });
            expect(await host.sparkPg("list")).toEqual([]);
            expect((await host.ok(`btrfs subvolume list -o ${PG_ROOT} | wc -l; ls -A ${PG_ROOT}/.snapshots 2>/dev/null | wc -l`)).split("\n")).toEqual(["0", "0", ""]);
        });
    });
}
