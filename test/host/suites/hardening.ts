// spark-pg against what a real host throws at it: local users who plant symlinks or hold its
// locks, a verb killed at every step, repeated creates by the same requester, a postmaster that
// dies, passwords watched for, clients that insist on TLS, and host names as listen addresses.
// Attacks run as the unprivileged users a host has (postgres, nobody), never as root.
import { clearHost, PG_BIN, PG_ROOT, query, SparksLabHost } from "../labHost";

const ADDRESS = "10.89.42.11";
const NEW_STEPS = ["locked", "subvolume", "meta", "initdb", "config", "started", "role"];
const FORK_STEPS = ["locked", "snapshot", "meta", "config", "started", "password"];

/** Runs on the shared host (test/host/databases.test.ts), which it leaves with no instance. */
export function hardeningSuite(sharedHost: () => SparksLabHost): void {
    describe("spark-pg hardening on a lab host", () => {
        let host: SparksLabHost;
        const pw = (name: string) => `pw-${name}-'q\\"$x`;

        /** psql on the host itself, as a network client would (TCP, the given sslmode). */
        function psql(uri: string, password: string, sql: string): Promise<{ code: number; stdout: string; stderr: string }> {
            return host.sh(`PGPASSWORD="$(cat)" ${PG_BIN}/psql -X -At "${uri}" -c "${sql}"`, password);
        }

        /** Runs spark-pg ARGS with SPARK_PG_FAULT=STEP; returns its exit status (137: killed by SIGKILL). */
        async function faulted(step: string, args: string, input?: string): Promise<number> {
            // The status as a shell reports it: ssh turns a command killed by a signal into 255.
            const result = await host.sh(`SPARK_PG_FAULT=${step} spark-pg ${args} >/dev/null 2>&1; echo "status=$?"`, input);
            return Number(/status=(\d+)/.exec(result.stdout)?.[1]);
        }

        /** Every instance's port, whole or broken, must be distinct. */
        async function expectNoPortCollision(): Promise<any[]> {
            const list = await host.sparkPg("list");
            const ports = list.map((i: any) => i.port).filter((p: number | null) => p !== null);
            expect(new Set(ports).size).toBe(ports.length);
            return list;
        }

        beforeAll(async () => {
            host = sharedHost();
            await host.sparkPg("new src --password-stdin", `${pw("src")}\n`);
            await host.ok("spark-pg connect src --psql", "CREATE TABLE marks AS SELECT g AS id FROM generate_series(1, 100) g; GRANT SELECT ON marks TO spark;\n");
        });

        afterAll(async () => {
            await clearHost(host);
        });

        test("a fork never follows a symlink the postgres user planted in the data directory", async () => {
            await host.ok("printf 'precious\\n' > /etc/sparks-victim && chmod 0644 /etc/sparks-victim");
            // The postgres user owns data/: it can put anything there, and a fork snapshots it.
            for (const file of ["postgresql.conf.tmp", "pg_hba.conf.tmp", "postgresql.conf.new"]) {
                await host.ok(`runuser -u postgres -- ln -s /etc/sparks-victim ${PG_ROOT}/src/data/${file}`);
            }
            const fork = await host.sparkPg("fork src planted --password-stdin", `${pw("planted")}\n`);
            expect((await host.ok("cat /etc/sparks-victim"))).toBe("precious\n");
            expect(await query(fork.uri, pw("planted"), "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 100 }]);
            // What spark-pg wrote into the data directory is the postgres user's, as the rest of it.
            expect((await host.ok(`stat -c %U ${PG_ROOT}/planted/data/postgresql.conf ${PG_ROOT}/planted/data/pg_hba.conf`)).trim().split("\n")).toEqual(["postgres", "postgres"]);
            await host.ok(`rm -f ${PG_ROOT}/src/data/*.tmp ${PG_ROOT}/src/data/postgresql.conf.new /etc/sparks-victim`);
            await host.sparkPg("destroy planted");
        });

        test("the locks are root's: another user cannot hold them, and new works while one tries", async () => {
            expect((await host.ok("stat -c '%U %a %F' /run/spark-pg")).trim()).toBe("root 700 directory");
            for (const lock of [`${PG_ROOT}/.spark-pg.lock`, "/run/spark-pg/alloc.lock", "/run/spark-pg/lockfree.lock"]) {
                expect((await host.sh(`runuser -u nobody -- flock -n ${lock} true`)).code).not.toBe(0);
            }
            // nobody tries to hold every lock path for 60 s; spark-pg must not wait on it.
            const holders = host.sh(`for l in ${PG_ROOT}/.spark-pg.lock /run/spark-pg/alloc.lock; do runuser -u nobody -- flock $l sleep 60 & done; wait`);
            const started = Date.now();
            const made = await host.sh("timeout 30 spark-pg new lockfree --json");
            expect(made.code).toBe(0);
            expect(Date.now() - started).toBeLessThan(20000);
            await host.sparkPg("destroy lockfree");
            await host.ok("pkill -u nobody -x sleep || true");
            await holders;

            // A /run/spark-pg that is not root's own directory is refused, never used.
            await host.ok("mv /run/spark-pg /run/spark-pg.real && runuser -u nobody -- mkdir /tmp/nobody-run && ln -s /tmp/nobody-run /run/spark-pg");
            try {
                expect(await host.refused("new lockless")).toBe("spark-pg new: /run/spark-pg is not a root-only directory (root's, 0700, not a symlink); refusing to use it");
            } finally {
                await host.ok("rm /run/spark-pg && rmdir /tmp/nobody-run && mv /run/spark-pg.real /run/spark-pg");
            }
        });

        // A verb killed at STEP leaves a partial instance: seen as broken, its port never handed out,
        // destroy removes it, and the same create run again makes it whole.
        async function killedAt(verb: string, step: string): Promise<void> {
            const name = `k-${verb === "new" ? "n" : "f"}-${step}`;
            const args = verb === "new" ? `new ${name}` : `fork src ${name}`;
            const owner = `sparks/test/${name}`;
            expect({ step, code: await faulted(step, `${args} --owner ${owner} --password-stdin --json`, `${pw(name)}\n`) }).toEqual({ step, code: 137 });

            // Killed holding only the allocation lock, it made nothing; at any later step, a partial NAME.
            const made = step !== "locked";
            const list = await expectNoPortCollision();
            expect(list.find((i: any) => i.name === "src")).toMatchObject({ state: "running" });
            if (made) {
                expect(list.find((i: any) => i.name === name)).toMatchObject({ state: "broken" });
                expect((await host.sparkPg(`status ${name}`)).state).toBe("broken");
                await expect(host.sparkPg(`start ${name}`)).rejects.toThrow(/is broken/);
            } else {
                expect(list.map((i: any) => i.name)).not.toContain(name);
            }
            // Other verbs go on: a fork takes a port no instance, whole or broken, records.
            const other = await host.sparkPg("fork src bystander");
            expect(list.map((i: any) => i.port)).not.toContain(other.port);
            await host.sparkPg("destroy bystander");

            expect(await host.sparkPg(`destroy ${name} --if-exists`)).toEqual({ name, destroyed: made });
            expect(await faulted(step, `${args} --owner ${owner}`)).toBe(137);
            const again = await host.sparkPg(`${args} --owner ${owner} --password-stdin`, `${pw(name)}\n`);
            expect(again).toMatchObject({ name, state: "running", owner, adopted: false });
            expect(await query(again.uri, pw(name), "SELECT 1 AS one")).toEqual([{ one: 1 }]);
            await expectNoPortCollision();
            await host.sparkPg(`destroy ${name}`);
        }

        test.each(NEW_STEPS)("new killed at %s: broken, harmless, destroyable, made again", (step) => killedAt("new", step));
        test.each(FORK_STEPS)("fork killed at %s: broken, harmless, destroyable, made again", (step) => killedAt("fork", step));

        test("damaged metadata makes one instance broken, not every verb", async () => {
            await host.sparkPg("new damaged");
            await host.ok(`printf 'garbage\\n' > ${PG_ROOT}/damaged/spark-pg.meta`);
            const list = await host.sparkPg("list");
            expect(list.find((i: any) => i.name === "damaged")).toMatchObject({ state: "broken", port: null });
            const fork = await host.sparkPg("fork src whole");
            expect(fork.state).toBe("running");
            // Its postmaster still listens: that port is skipped even though no record names it.
            const damagedPort = Number((await host.ok(`grep -o '^port = [0-9]*' ${PG_ROOT}/damaged/data/postgresql.conf`)).split("=")[1]);
            expect(fork.port).not.toBe(damagedPort);
            expect(await host.refused("new damaged")).toMatch(/'damaged' already exists and is broken/);
            expect(await host.sparkPg("destroy damaged")).toEqual({ name: "damaged", destroyed: true });
            await host.sparkPg("destroy whole");
        });

        test("--owner: the same owner adopts NAME, any other is refused", async () => {
            const owner = "sparks/dev/app-pg";
            const made = await host.sparkPg(`new own --owner ${owner} --password-stdin`, "first\n");
            expect(made).toMatchObject({ owner, adopted: false });
            await host.sparkPg("stop own");
            const adopted = await host.sparkPg(`new own --owner ${owner} --password-stdin`, "second\n");
            expect(adopted).toMatchObject({ name: "own", state: "running", enabled: true, port: made.port, created: made.created, owner, adopted: true });
            expect(Object.keys(adopted).sort()).toEqual(Object.keys(made).sort());
            expect(await query(adopted.uri, "second", "SELECT 1 AS one")).toEqual([{ one: 1 }]);
            await expect(query(adopted.uri, "first", "SELECT 1")).rejects.toThrow(/password authentication failed/);
            // Without a password, adoption leaves the password as it is.
            expect(await host.sparkPg(`new own --owner ${owner}`)).toMatchObject({ adopted: true });
            expect(await query(adopted.uri, "second", "SELECT 1 AS one")).toEqual([{ one: 1 }]);

            expect(await host.refused("new own --owner sparks/dev/other")).toBe("spark-pg new: 'own' already exists");
            expect(await host.refused("new own")).toBe("spark-pg new: 'own' already exists");
            expect(await host.refused("new src --owner sparks/dev/app-pg")).toBe("spark-pg new: 'src' already exists");
            expect(await host.refused(`fork src own --owner ${owner}`)).toBe("spark-pg fork: 'own' already exists, made from 'nothing', not 'src'");
            for (const bad of ["''", "'a b'", "'a;b'", "$(printf 'a%.0s' {1..201})", "'x$y'"]) {
                expect(await host.refused(`new own2 --owner ${bad}`)).toMatch(/^spark-pg new: invalid owner/);
            }
            expect(await host.refused("new own2 --owner")).toMatch(/^spark-pg new: usage:/);

            const fork = await host.sparkPg(`fork own ownfork --owner ${owner}/fork --password-stdin`, "third\n");
            expect(await host.sparkPg(`fork own ownfork --owner=${owner}/fork`)).toMatchObject({ port: fork.port, adopted: true, hot: false, source: "own" });
            expect(await host.refused(`fork src ownfork --owner ${owner}/fork`)).toBe("spark-pg fork: 'ownfork' already exists, made from 'own', not 'src'");
            const list = await host.sparkPg("list");
            expect(Object.fromEntries(list.map((i: any) => [i.name, i.owner]))).toMatchObject({ src: null, own: owner, ownfork: `${owner}/fork` });
            expect((await host.sparkPg("status own")).owner).toBe(owner);

            // A partial create belongs to its owner: another is refused, the same one re-creates it.
            expect(await faulted("meta", "new half --owner sparks/dev/a")).toBe(137);
            expect(await host.refused("new half --owner sparks/dev/b")).toBe("spark-pg new: 'half' already exists");
            expect(await host.sparkPg("new half --owner sparks/dev/a")).toMatchObject({ state: "running", adopted: false });
            for (const name of ["half", "ownfork", "own"]) await host.sparkPg(`destroy ${name}`);
        });

        test("a postmaster killed with SIGKILL is restarted with its data; a crash loop ends failed", async () => {
            const made = await host.sparkPg("new crashy --password-stdin", "crashy\n");
            await query(made.uri, "crashy", "CREATE TABLE kept AS SELECT 42 AS answer");
            const pid = (await host.ok("systemctl show -p MainPID --value spark-pg@crashy")).trim();
            expect(Number(pid)).toBeGreaterThan(0);
            await host.ok(`kill -9 ${pid}`);
            const started = Date.now();
            let rows: any[] = [];
            while (Date.now() - started < 30000) {
                try {
                    rows = await query(made.uri, "crashy", "SELECT answer FROM kept");
                    break;
                } catch {
                    await new Promise((resolve) => setTimeout(resolve, 250));
                }
            }
            console.log(`postmaster back after SIGKILL in ${Date.now() - started} ms`);
            expect(rows).toEqual([{ answer: 42 }]);
            expect((await host.ok("systemctl show -p MainPID --value spark-pg@crashy")).trim()).not.toBe(pid);
            const back = await host.sparkPg("status crashy");
            expect(back.state).toBe("running");
            expect(back.restarts).toBeGreaterThanOrEqual(1);

            // A postmaster that cannot start: systemd gives up after its start limit, and says so.
            await host.ok(`runuser -u postgres -- sh -c 'echo "shared_buffers = nonsense" >> ${PG_ROOT}/crashy/data/postgresql.auto.conf'`);
            await host.ok("kill -9 $(systemctl show -p MainPID --value spark-pg@crashy)");
            await host.ok("for i in $(seq 120); do [ \"$(systemctl show -p ActiveState --value spark-pg@crashy)\" = failed ] && exit 0; sleep 0.5; done; exit 1");
            const failed = await host.sparkPg("status crashy");
            expect(failed.state).toBe("failed");
            expect(failed.restarts).toBeGreaterThanOrEqual(1);
            expect((await host.sparkPg("list")).find((i: any) => i.name === "crashy").state).toBe("failed");
            expect(await host.ok("spark-pg status crashy")).toMatch(/state: +failed after \d+ automatic restarts/);
            await host.sparkPg("destroy crashy");
        });

        test("a password set by spark-pg never reaches Postgres in clear: not in pg_stat_activity, not in the log", async () => {
            const owner = "sparks/dev/secret";
            const made = await host.sparkPg(`new secret --owner ${owner} --password-stdin`, "before\n");
            const port = made.port;
            const asPg = `runuser -u postgres -- ${PG_BIN}/psql -X -At -h /run/postgresql -p ${port} -d postgres`;
            await host.ok(`${asPg} -c "ALTER SYSTEM SET log_statement = 'all'" -c "ALTER SYSTEM SET log_min_error_statement = 'debug5'" -c "SELECT pg_reload_conf()"`);
            // A session holding a lock on pg_authid makes spark-pg's ALTER ROLE wait, in plain sight of
            // pg_stat_activity, while a poller records every statement it sees.
            const blocker = host.sh(`${asPg} -c "BEGIN; LOCK TABLE pg_authid IN SHARE MODE; SELECT pg_sleep(4); COMMIT;"`);
            const poller = host.sh(`for i in $(seq 100); do ${asPg} -c "SELECT query FROM pg_stat_activity WHERE query ILIKE '%ROLE spark%PASSWORD%'"; sleep 0.05; done`);
            await new Promise((resolve) => setTimeout(resolve, 500));
            const secret = "Sekr1t-never-in-clear";
            const adopted = await host.sparkPg(`new secret --owner ${owner} --password-stdin`, `${secret}\n`);
            await blocker;
            const seen = (await poller).stdout;
            expect(seen).toMatch(/PASSWORD 'SCRAM-SHA-256\$4096:/);
            expect(seen).not.toContain(secret);
            const log = await host.ok("journalctl -q -o cat -u spark-pg@secret --no-pager");
            expect(log).not.toContain(secret);
            expect(await query(adopted.uri, secret, "SELECT current_user AS who")).toEqual([{ who: "spark" }]);
            // SASLprep as Postgres does it: libpq logs in with a non-ASCII password too.
            const unicode = "pässwörd-ﬁ-x";
            await host.sparkPg(`new secret --owner ${owner} --password-stdin`, `${unicode}\n`);
            expect((await psql(`postgresql://spark@${ADDRESS}:${port}/spark?sslmode=require`, unicode, "SELECT 7")).stdout.trim()).toBe("7");
            await host.sparkPg("destroy secret");
        });

        test("TLS: verify-full with the printed certificate works, plain TCP is refused, the key is not readable by others", async () => {
            const pem = await host.ok("spark-pg cert");
            expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);
            const json = await host.sparkPg("cert");
            expect(json.pem).toBe(pem);
            expect(json.names).toEqual(expect.arrayContaining(["localhost", "127.0.0.1", ADDRESS]));
            expect(json.sha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
            expect((await host.ok("openssl x509 -in /etc/sparks/tls/server.crt -noout -ext subjectAltName")).replace(/\s+/g, " "))
                .toMatch(new RegExp(`DNS:localhost, IP Address:127.0.0.1, IP Address:${ADDRESS.replace(/\./g, "\\.")}`));
            expect((await host.ok("stat -c '%U:%G %a' /etc/sparks/tls /etc/sparks/tls/server.key")).trim().split("\n")).toEqual(["root:postgres 750", "root:postgres 640"]);
            expect((await host.sh("runuser -u nobody -- cat /etc/sparks/tls/server.key")).code).not.toBe(0);
            await host.ok("spark-pg cert > /tmp/sparks-root.crt");

            const port = (await host.sparkPg("status src")).port;
            const uri = (await host.ok("spark-pg connect src")).trim();
            expect(uri).toBe(`postgresql://spark@${ADDRESS}:${port}/spark?sslmode=verify-full`);
            for (const addr of [ADDRESS, "127.0.0.1"]) {
                const ok = await psql(`postgresql://spark@${addr}:${port}/spark?sslmode=verify-full&sslrootcert=/tmp/sparks-root.crt`, pw("src"), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
                expect({ addr, out: ok.stdout.trim(), err: ok.stderr }).toEqual({ addr, out: "t", err: "" });
                const plain = await psql(`postgresql://spark@${addr}:${port}/spark?sslmode=disable`, pw("src"), "SELECT 1");
                expect(plain.code).not.toBe(0);
                expect(plain.stderr).toMatch(/no pg_hba.conf entry .* no encryption/);
            }
            // A certificate for another name is not accepted: verify-full checks the name.
            const wrongName = await psql(`postgresql://spark@spark-1:${port}/spark?sslmode=verify-full&sslrootcert=/tmp/sparks-root.crt`, pw("src"), "SELECT 1");
            expect(wrongName.stderr).toMatch(/server certificate for .* does not match host name "spark-1"/);

            // An instance made before TLS (plain host lines, no ssl): its fork gets TLS, and so does
            // the instance itself on its next start.
            await host.ok(`runuser -u postgres -- sh -c "sed -i '/^ssl/d' ${PG_ROOT}/src/data/postgresql.conf && sed -i 's/^hostssl/host/' ${PG_ROOT}/src/data/pg_hba.conf" && systemctl restart spark-pg@src`);
            expect((await psql(`postgresql://spark@${ADDRESS}:${port}/spark?sslmode=disable`, pw("src"), "SELECT 1")).stdout.trim()).toBe("1");
            const fork = await host.sparkPg("fork src tlsfork --password-stdin", "tlsfork\n");
            expect((await psql(`${fork.uri}&sslrootcert=/tmp/sparks-root.crt`, "tlsfork", "SELECT 1")).stdout.trim()).toBe("1");
            expect((await psql(`postgresql://spark@${ADDRESS}:${fork.port}/spark?sslmode=disable`, "tlsfork", "SELECT 1")).code).not.toBe(0);
            await host.sparkPg("start src");
            expect((await psql(`postgresql://spark@${ADDRESS}:${port}/spark?sslmode=disable`, pw("src"), "SELECT 1")).code).not.toBe(0);
            expect(await query(uri, pw("src"), "SELECT count(*)::int AS n FROM marks")).toEqual([{ n: 100 }]);
            await host.sparkPg("destroy tlsfork");
        });

        test("a DNS name in SPARK_PG_LISTEN: accepted, in URIs and the certificate, listened on; IPv6 in brackets", async () => {
            await host.ok("sed 's/^SPARK_PG_LISTEN=.*/SPARK_PG_LISTEN=\"127.0.0.1 Spark-1\"/' /etc/sparks/spark-pg.conf > /tmp/dns.conf");
            const dns = JSON.parse(await host.ok("SPARK_PG_CONF=/tmp/dns.conf spark-pg new named --password-stdin --json", "named\n"));
            expect(dns.uri).toBe(`postgresql://spark@spark-1:${dns.port}/spark?sslmode=verify-full`);
            expect(JSON.parse(await host.ok("SPARK_PG_CONF=/tmp/dns.conf spark-pg connect named --json"))).toMatchObject({ host: "spark-1" });
            expect((await host.sparkPg("cert")).names).toEqual(expect.arrayContaining(["spark-1", ADDRESS]));
            await host.ok("spark-pg cert > /tmp/sparks-root.crt");
            // spark-1 resolves to the host's address: Postgres listens there, and the name verifies.
            expect((await host.ok(`ss -Hltn 'sport = :${dns.port}' | awk '{print $4}' | sort`)).trim().split("\n")).toEqual([`${ADDRESS}:${dns.port}`, `127.0.0.1:${dns.port}`].sort());
            const viaName = await psql(`${dns.uri}&sslrootcert=/tmp/sparks-root.crt`, "named", "SELECT 1");
            expect({ out: viaName.stdout.trim(), err: viaName.stderr }).toEqual({ out: "1", err: "" });
            await host.sparkPg("destroy named");

            await host.ok("sed 's/^SPARK_PG_LISTEN=.*/SPARK_PG_LISTEN=\"127.0.0.1 fd00::11\"/' /etc/sparks/spark-pg.conf > /tmp/v6.conf");
            const port = (await host.sparkPg("status src")).port;
            expect((await host.ok("SPARK_PG_CONF=/tmp/v6.conf spark-pg connect src")).trim()).toBe(`postgresql://spark@[fd00::11]:${port}/spark?sslmode=verify-full`);
            expect(JSON.parse(await host.ok("SPARK_PG_CONF=/tmp/v6.conf spark-pg connect src --json"))).toMatchObject({ host: "fd00::11" });
            for (const bad of ["-bad", "bad-", "a..b", "1.2.3", "999.1.1.1", "a_b", `${"a".repeat(64)}.example`]) {
                await host.ok(`sed 's/^SPARK_PG_LISTEN=.*/SPARK_PG_LISTEN="127.0.0.1 ${bad}"/' /etc/sparks/spark-pg.conf > /tmp/bad.conf`);
                expect((await host.sh("SPARK_PG_CONF=/tmp/bad.conf spark-pg list")).stderr.trim()).toMatch(/bad listen address/);
            }
        });
    });
}
