// spark-redis on the shared host: every verb, forks that hold their source's keys and diverge,
// each with its own password (the source's refused), bad input refused with one line and nothing
// changed, restarts that keep every acknowledged write, forks taken under a writer that hold every
// write acknowledged before them and pass redis-check-aof, and what an attacker on the host finds.
import { REDIS_CONF, REDIS_ROOT, redisConnect, SparksLabHost, withRedis } from "../labHost";

const [PORT_MIN] = REDIS_CONF.SPARK_REDIS_PORTS.split("-").map(Number);

/** Destroys every spark-redis instance on the host, so the next suite finds none. */
async function clearRedis(host: SparksLabHost): Promise<void> {
    for (const { name } of await host.sparkRedis("list")) await host.ok(`spark-redis destroy ${name} --force`);
    expect(await host.sparkRedis("list")).toEqual([]);
}

/** Runs on the shared host (test/host/databases.test.ts), which it leaves with no instance. */
export function redisSuite(sharedHost: () => SparksLabHost): void {
    describe("spark-redis", () => {
        let host: SparksLabHost;
        const password = "cache-password";
        const forkPassword = "fork-password";
        let cache: any;

        beforeAll(async () => {
            host = sharedHost();
        });

        afterAll(async () => {
            if (host !== undefined) await clearRedis(host);
        });

        test("new: an empty instance on the lowest free port, reached on the host's address with its own password only", async () => {
            cache = await host.sparkRedis("new cache --password-stdin", `${password}\n`);
            expect(cache).toMatchObject({ name: "cache", state: "running", enabled: true, port: PORT_MIN, source: null, adopted: false });
            expect(cache.uri).toBe(`redis://spark@10.89.42.11:${PORT_MIN}`);
            await withRedis(cache.uri, password, async (c) => {
                expect(await c.aclWhoAmI()).toBe("spark");
                await c.set("greeting", "hello");
                // Big enough for extents of its own on disk (small files live inline in btrfs metadata).
                await c.set("blob", "b".repeat(256 * 1024));
                await c.rPush("sparks:verify:lineage", "cache");
                // spark is everything but an admin: no CONFIG, ACL SETUSER, SHUTDOWN or DEBUG.
                await expect(c.configGet("dir")).rejects.toThrow(/NOPERM/);
                await expect(c.sendCommand(["ACL", "SETUSER", "spark", "nopass"])).rejects.toThrow(/NOPERM/);
            });
            await expect(redisConnect(cache.uri, "wrong")).rejects.toThrow(/WRONGPASS/);
            await expect(redisConnect(cache.uri, "", "default")).rejects.toThrow();
            // The listen addresses are the config's: loopback and the host's address, nothing else.
            const listening = await host.ok(`ss -Hltn 'sport = :${PORT_MIN}' | awk '{print $4}' | sort`);
            expect(listening.trim().split("\n")).toEqual([`10.89.42.11:${PORT_MIN}`, `127.0.0.1:${PORT_MIN}`]);
            expect(await host.ok("systemctl is-enabled spark-redis@cache")).toBe("enabled\n");
        });

        test("status and list: state, port, memory, keys, disk, source, created", async () => {
            const status = await host.sparkRedis("status cache");
            expect(status).toMatchObject({ name: "cache", state: "running", port: PORT_MIN, source: null, keys: 3, restarts: 0 });
            expect(status.memory).toBeGreaterThan(100_000);
            expect(status.size.total).toBeGreaterThan(0);
            expect(status.created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
            expect((await host.sparkRedis("list")).map((i: any) => i.name)).toEqual(["cache"]);
            const text = await host.ok("spark-redis status cache");
            expect(text).toMatch(/keys: +3/);
            expect(await host.ok("spark-redis connect cache")).toBe(`redis://spark@10.89.42.11:${PORT_MIN}\n`);
            expect(await host.ok("spark-redis connect cache --cli", "DBSIZE\n")).toBe("3\n");
            expect(await host.ok("spark-redis connect cache --cli", "NOSUCHCOMMAND\n")).toMatch(/^ERR unknown command 'NOSUCHCOMMAND'/);
        });

        test("fork: the source's keys as of the fork, its own port and password (never the source's), diverging both ways", async () => {
            const fork = await host.sparkRedis("fork cache review --password-stdin", `${forkPassword}\n`);
            expect(fork).toMatchObject({ name: "review", source: "cache", state: "running", hot: true, port: PORT_MIN + 1 });
            await withRedis(fork.uri, forkPassword, async (c) => {
                expect(await c.get("greeting")).toBe("hello");
                expect(await c.lRange("sparks:verify:lineage", 0, -1)).toEqual(["cache"]);
                await c.set("only-in-fork", "1");
            });
            await expect(redisConnect(fork.uri, password)).rejects.toThrow(/WRONGPASS/);
            await expect(redisConnect(cache.uri, forkPassword)).rejects.toThrow(/WRONGPASS/);
            await withRedis(cache.uri, password, async (c) => {
                expect(await c.exists("only-in-fork")).toBe(0);
                await c.set("only-in-source", "1");
            });
            await withRedis(fork.uri, forkPassword, async (c) => expect(await c.exists("only-in-source")).toBe(0));
            // A fork of the fork: the chain's keys, a third password.
            const grand = await host.sparkRedis("fork review review2 --password-stdin", "third\n");
            await withRedis(grand.uri, "third", async (c) => expect(await c.mGet(["greeting", "only-in-fork", "only-in-source"])).toEqual(["hello", "1", null]));
            const status = await host.sparkRedis("status review");
            expect(status).toMatchObject({ source: "cache", keys: 4 });
            // A snapshot shares its source's extents: a fork of a small instance holds next to nothing alone.
            expect(status.size.shared).toBeGreaterThan(0);
        });

        test("bad input: one line naming the problem, and nothing changed", async () => {
            const before = await host.sparkRedis("list");
            const refusals: [string, string][] = [
                ["fork nosuch other", "spark-redis fork: no instance named 'nosuch'"],
                ["new cache", "spark-redis new: 'cache' already exists"],
                ["fork cache review", "spark-redis fork: 'review' already exists"],
                ["new Bad_Name", "spark-redis new: invalid instance name 'Bad_Name' (want ^[a-z][a-z0-9-]{0,30}[a-z0-9]$)"],
                ["fork cache '../x'", "spark-redis fork: invalid instance name '../x' (want ^[a-z][a-z0-9-]{0,30}[a-z0-9]$)"],
                ["destroy cache", "spark-redis destroy: 'cache' has forks (review); destroy them first or use --force"],
                ["destroy nosuch", "spark-redis destroy: no instance named 'nosuch'"],
                ["frobnicate", "spark-redis: no such verb 'frobnicate' (see 'spark-redis help')"],
            ];
            for (const [args, line] of refusals) expect(await host.refused(args, undefined, "spark-redis")).toBe(line);
            expect(await host.refused("new pw --password-stdin", "\n", "spark-redis")).toBe("spark-redis new: no password on stdin");
            // No free port: a range of the ports taken already.
            await host.ok(`sed 's/^SPARK_REDIS_PORTS=.*/SPARK_REDIS_PORTS=${PORT_MIN}-${PORT_MIN + 2}/' /etc/sparks/spark-redis.conf > /tmp/tiny-redis.conf`);
            expect(await host.refused("fork cache extra", undefined, "SPARK_REDIS_CONF=/tmp/tiny-redis.conf spark-redis"))
                .toBe(`spark-redis fork: no free port in ${PORT_MIN}-${PORT_MIN + 2}`);
            expect(await host.refused("new extra", undefined, "SPARK_REDIS_CONF=/tmp/tiny-redis.conf spark-redis"))
                .toBe(`spark-redis new: no free port in ${PORT_MIN}-${PORT_MIN + 2}`);
            expect(await host.sparkRedis("list")).toEqual(before);
            await withRedis(cache.uri, password, async (c) => expect(await c.get("greeting")).toBe("hello"));
        });

        test("stop, start and a killed server keep every acknowledged write; adoption by the same owner", async () => {
            await withRedis(cache.uri, password, async (c) => {
                for (let i = 0; i < 100; i++) await c.incr("counter");
            });
            expect(await host.sparkRedis("stop cache")).toMatchObject({ state: "stopped", enabled: false });
            expect(await host.ok("systemctl is-enabled spark-redis@cache || true")).toBe("disabled\n");
            expect((await host.sparkRedis("status cache")).memory).toBeNull();
            expect(await host.sparkRedis("start cache")).toMatchObject({ state: "running", port: PORT_MIN });
            await withRedis(cache.uri, password, async (c) => expect(await c.get("counter")).toBe("100"));
            // SPARK_REDIS_APPENDFSYNC reaches a running server at start, and a bad value is refused.
            const appendfsync = () => host.ok("spark-redis connect cache --cli", "CONFIG GET appendfsync\n");
            expect(await appendfsync()).toBe("appendfsync\nalways\n");
            await host.ok("sed 's/^SPARK_REDIS_APPENDFSYNC=.*/SPARK_REDIS_APPENDFSYNC=everysec/' /etc/sparks/spark-redis.conf > /tmp/everysec.conf");
            await host.ok("SPARK_REDIS_CONF=/tmp/everysec.conf spark-redis start cache");
            expect(await appendfsync()).toBe("appendfsync\neverysec\n");
            await host.ok("sed 's/^SPARK_REDIS_APPENDFSYNC=.*/SPARK_REDIS_APPENDFSYNC=sometimes/' /etc/sparks/spark-redis.conf > /tmp/bad-fsync.conf");
            expect(await host.refused("start cache", undefined, "SPARK_REDIS_CONF=/tmp/bad-fsync.conf spark-redis"))
                .toMatch(/^spark-redis start: \/tmp\/bad-fsync.conf:\d+: SPARK_REDIS_APPENDFSYNC must be always or everysec, not 'sometimes'$/);
            await host.ok("spark-redis start cache");
            expect(await appendfsync()).toBe("appendfsync\nalways\n");
            // SIGKILL, as the OOM killer would: systemd starts it again, and the AOF holds every INCR.
            await withRedis(cache.uri, password, async (c) => { await c.incr("counter"); });
            const pid = (await host.ok("systemctl show -P MainPID spark-redis@cache")).trim();
            await host.ok(`kill -9 ${pid}`);
            await host.ok("for i in $(seq 100); do [ \"$(systemctl is-active spark-redis@cache)\" = active ] && break; sleep 0.2; done");
            await host.ok(`for i in $(seq 50); do [ "$(systemctl show -P MainPID spark-redis@cache)" != ${pid} ] && break; sleep 0.2; done`);
            await withRedis(cache.uri, password, async (c) => expect(await c.get("counter")).toBe("101"));
            expect((await host.sparkRedis("status cache")).restarts).toBe(1);
            // Made for an owner, adopted by the same owner with a new password, refused to another.
            await host.sparkRedis("new owned --owner sparks/dev/owned --password-stdin", "first\n");
            const adopted = await host.sparkRedis("new owned --owner sparks/dev/owned --password-stdin", "second\n");
            expect(adopted).toMatchObject({ adopted: true });
            await expect(redisConnect(adopted.uri, "first")).rejects.toThrow(/WRONGPASS/);
            await withRedis(adopted.uri, "second", async (c) => expect(await c.aclWhoAmI()).toBe("spark"));
            expect(await host.refused("new owned --owner sparks/dev/other", undefined, "spark-redis")).toBe("spark-redis new: 'owned' already exists");
            // A fork killed right after its snapshot leaves a broken instance, which the same create mends.
            await host.sh("SPARK_REDIS_FAULT=snapshot spark-redis fork cache killed --owner sparks/dev/killed");
            expect((await host.sparkRedis("list")).find((i: any) => i.name === "killed")).toMatchObject({ state: "broken" });
            expect(await host.sparkRedis("fork cache killed --owner sparks/dev/killed")).toMatchObject({ state: "running", adopted: false });
            await host.ok("spark-redis destroy killed && spark-redis destroy owned");
        });

        test("no secret in reach of other users, in argv or in the log", async () => {
            const data = `${REDIS_ROOT}/cache/data`;
            expect(await host.ok(`stat -c '%U %a' ${REDIS_ROOT}/cache/spark-redis.secret ${data} ${data}/users.acl`))
                .toBe("root 600\nredis 700\nredis 600\n");
            // The ACL holds SHA-256 hashes only; the journal never saw a password.
            const acl = await host.ok(`cat ${data}/users.acl`);
            expect(acl).not.toContain(password);
            expect(acl).toContain(`#${require("crypto").createHash("sha256").update(password).digest("hex")}`);
            expect(await host.ok(`journalctl -q -o cat -u 'spark-redis@*' | grep -c -e ${password} -e ${forkPassword} || true`)).toBe("0\n");
            // A local user who is not root cannot read the data, the ACL or the admin password.
            expect((await host.sh(`runuser -u nobody -- cat ${REDIS_ROOT}/cache/spark-redis.secret`)).code).not.toBe(0);
            expect((await host.sh(`runuser -u nobody -- ls ${data}`)).code).not.toBe(0);
        });

        test("forks taken while a writer runs hold every write acknowledged before them and pass redis-check-aof", async () => {
            // redis-benchmark pipelines writes in the background; a client counts INCRs and knows
            // which were acknowledged when each fork began.
            const load = host.sh(`redis-benchmark -h 127.0.0.1 -p ${PORT_MIN} --user spark -a ${password} -t set,lpush -n 100000000 -r 100000 -P 16 -q >/dev/null 2>&1 & echo $! > /tmp/redis-load.pid; wait`);
            const writer = await redisConnect(cache.uri, password);
            let acked = 0;
            const readyMs: number[] = [];
            let running = true;
            const writing = (async () => {
                while (running) acked = await writer.incr("acked");
            })();
            try {
                await new Promise((resolve) => setTimeout(resolve, 2000));
                for (let i = 1; i <= 5; i++) {
                    const before = acked;
                    const fork = await host.sparkRedis(`fork cache load${i} --password-stdin`, "load\n");
                    expect(fork).toMatchObject({ hot: true });
                    readyMs.push(fork.ready_ms);
                    const held = Number(await withRedis(fork.uri, "load", (c) => c.get("acked")));
                    expect(held).toBeGreaterThanOrEqual(before);
                    await host.ok(`spark-redis stop load${i}`);
                    const check = await host.ok(`cd ${REDIS_ROOT}/load${i}/data/appendonlydir && runuser -u redis -- redis-check-aof appendonly.aof.manifest 2>&1`);
                    expect(check).toMatch(/All AOF files and manifest are valid/);
                    await host.ok(`spark-redis destroy load${i}`);
                }
            } finally {
                running = false;
                await writing;
                writer.destroy();
                await host.sh("kill $(cat /tmp/redis-load.pid)");
                await load;
            }
            expect(acked).toBeGreaterThan(100);
            console.log(`spark-redis fork under load, ready ms (its own measure): ${JSON.stringify(readyMs)}`);
        });

        test("destroy: refused with forks, then forks first; --force and --if-exists", async () => {
            expect(await host.sparkRedis("destroy review2")).toEqual({ name: "review2", destroyed: true });
            expect(await host.sparkRedis("destroy cache --force")).toEqual({ name: "cache", destroyed: true });
            // The fork keeps running, still naming its source.
            await withRedis((await host.sparkRedis("status review")).uri, forkPassword, async (c) => expect(await c.get("greeting")).toBe("hello"));
            expect(await host.sparkRedis("destroy cache --if-exists")).toEqual({ name: "cache", destroyed: false });
            await host.ok("spark-redis destroy review");
            expect(await host.ok(`ls ${REDIS_ROOT}`)).toBe("");
            expect(await host.ok("systemctl list-units --all --plain --no-legend 'spark-redis@*' | wc -l")).toBe("0\n");
        });
    });
}
