// The shape of the resource graph, with Pulumi's mocks: which resources a config makes, what their
// commands say, and that the host gate refuses a wrong key. Mocks prove the graph, not the hosts:
// the real engine against real hosts is test/e2e.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { HostSpec } from "../../components/config";
import { gateVerdict } from "../../components/hostConnection";

const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const KEY_B = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

interface Made { type: string; name: string; inputs: any }

/** Stands in for the lab's login key: a LabHost reads it once its machine exists. */
const LAB_KEY_DIR = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-graph-"));
const LAB_KEY_FILE = path.join(LAB_KEY_DIR, "id_ed25519");
afterAll(() => fs.rmSync(LAB_KEY_DIR, { recursive: true, force: true }));
fs.writeFileSync(LAB_KEY_FILE, "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n");

/** Runs index.ts under mocks with `config` (as an `up`, or as a preview); returns every resource made and the exports. */
async function runProgram(config: Record<string, unknown>, preview = false) {
    const made: Made[] = [];
    await pulumi.runtime.setMocks({
        newResource: (args) => {
            made.push({ type: args.type, name: args.name, inputs: args.inputs });
            const state = { ...args.inputs };
            if (args.type === "random:index/randomPassword:RandomPassword") state.result = `pw-${args.name}`;
            if (args.type === "command:local:Command") {
                // A lab machine, as `sparks-lab up --json NAME` reports it.
                state.stdout = JSON.stringify([{ name: args.name.replace(/-machine$/, ""), hostKey: KEY_A, privateKeyFile: LAB_KEY_FILE }]);
            }
            if (args.type === "command:remote:Command") {
                state.stdout = args.name.endsWith("-dev-image") ? JSON.stringify({ image: "bookworm-0123456789abcdef" })
                    : args.name === "skills-serve" ? JSON.stringify({ url: "http://10.0.0.11:8080/skills.git", push_url: "sparks-skills@10.0.0.11:skills.git", head: "c0ffee" })
                    : args.name === "skills-verify" ? JSON.stringify({ verify_commit: "5ca1ab1e" })
                    : args.name.endsWith("-verify") ? JSON.stringify({ pool: "/srv/sparks", tools: "h", sparkPg: "0.1.0", kvmApiVersion: 12 })
                        : JSON.stringify({ port: 5432 + made.length });
            }
            return { id: `${args.name}-id`, state };
        },
        call: (args) => {
            if (args.token !== "command:local:run") throw new Error(`unexpected call ${args.token}`);
            // The probe's last quoted word is the address; hosts of other tests do not answer.
            const address = [...(args.inputs.command as string).matchAll(/'([^']+)'/g)].pop()![1];
            const key = { "10.0.0.11": KEY_A, "10.0.0.12": KEY_B }[address];
            return { stdout: key === undefined ? "" : `${address} ${key}\n`, stderr: "" };
        },
    }, "sparks", "unit", preview);
    pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, JSON.stringify(v)])));
    let exports: any;
    jest.isolateModules(() => { exports = require("../../index"); });
    const resolve = <T>(out: pulumi.Output<T>) => new Promise<T>((r) => out.apply(r));
    const hosts = await resolve(pulumi.output(exports.hosts));
    const postgres = await resolve(pulumi.output(exports.postgres));
    return { made, hosts, postgres, exports };
}

const fleet = {
    "sparks:ssh": { agent: true },
    "sparks:pool": { device: "/dev/vdb" },
    "sparks:hosts": [
        { name: "spark-1", address: "10.0.0.11", hostKey: KEY_A },
        { name: "spark-2", address: "10.0.0.12", hostKey: KEY_B },
    ],
    "sparks:postgres": [{ name: "app", host: "spark-2" }],
    "sparks:forks": [{ name: "app-review-2", source: "app-review" }, { name: "app-review", source: "app" }],
};

describe("a fleet of two hosts, an instance and a fork of a fork", () => {
    let run: Awaited<ReturnType<typeof runProgram>>;
    beforeAll(async () => { run = await runProgram(fleet); });
    const named = (name: string) => run.made.find((r) => r.name === name)!;

    test("each host gets the same setup steps, in its own names", () => {
        for (const host of ["spark-1", "spark-2"]) {
            expect(run.made.filter((r) => r.name.startsWith(`${host}-`)).map((r) => r.name).sort()).toEqual(
                ["kvm", "packages", "pool", "staging", "tools", "tools-copy", "verify"].map((s) => `${host}-${s}`),
            );
        }
    });

    test("every remote command pins the host key of its host", () => {
        const remote = run.made.filter((r) => r.type.startsWith("command:remote:"));
        expect(remote).toHaveLength(2 * 7 + 3);
        for (const r of remote) {
            // pulumi-command marks the whole connection secret (it may hold a key).
            const connection = r.inputs.connection.value;
            const onSpark1 = r.name.startsWith("spark-1");
            expect(connection.host).toBe(onSpark1 ? "10.0.0.11" : "10.0.0.12");
            expect(connection.hostKey).toBe(onSpark1 ? KEY_A : KEY_B);
            // sshd would refuse PULUMI_COMMAND_STDOUT/STDERR with a warning on every update.
            if (r.type === "command:remote:Command") expect(r.inputs.addPreviousOutputInEnv).toBe(false);
        }
    });

    test("passwords reach spark-pg on stdin, never on the command line", () => {
        for (const db of ["app", "app-review", "app-review-2"]) {
            const cmd = named(`${db}-pg`);
            expect(cmd.inputs.stdin).toBe(`pw-${db}-password`);
            expect(cmd.inputs.create).not.toContain("pw-");
            expect(cmd.inputs.create).toContain("--password-stdin");
        }
    });

    test("forks are made in source order, whatever the config order", () => {
        const created = (name: string) => named(`${name}-pg`).inputs.create.split(" && ")[0];
        expect(created("app")).toBe("spark-pg new 'app' --owner 'sparks/unit/app' --password-stdin --json");
        expect(created("app-review")).toBe("spark-pg fork 'app' 'app-review' --owner 'sparks/unit/app-review' --password-stdin --json");
        expect(created("app-review-2")).toBe("spark-pg fork 'app-review' 'app-review-2' --owner 'sparks/unit/app-review-2' --password-stdin --json");
        const order = run.made.map((r) => r.name);
        expect(order.indexOf("app-review-pg")).toBeLessThan(order.indexOf("app-review-2-pg"));
    });

    test("each database records its name in its lineage table, for verify", () => {
        expect(named("app-review-pg").inputs.create).toContain("\\set ON_ERROR_STOP on\nSET client_min_messages = warning; SET ROLE spark;");
        expect(named("app-review-pg").inputs.create).toMatch(/INSERT INTO sparks_verify.lineage \(name\) VALUES \('\\''app-review'\\''\)/);
    });

    test("the pool step carries the device and mount point as quoted values", () => {
        expect(named("spark-1-pool").inputs.create).toMatch(/^HOST='spark-1' DEVICE='\/dev\/vdb' MOUNT_POINT='\/srv\/sparks' WIPE_ON_DELETE='false' bash -c /);
    });

    test("exports the verify findings and secret URIs", async () => {
        expect(run.hosts["spark-1"].kvmApiVersion).toBe(12);
        expect(run.postgres.app.uri).toMatch(/^postgresql:\/\/spark:pw-app-password@10\.0\.0\.12:\d+\/spark\?sslmode=verify-full$/);
        expect(run.postgres["app-review"]).toMatchObject({ host: "spark-2", source: "app" });
        expect(await pulumi.isSecret(run.exports.postgres.app.uri)).toBe(true);
    });
});


describe("an instance's snapshots, and forks of them (test fixtures)", () => {
    let run: Awaited<ReturnType<typeof runProgram>>;
    beforeAll(async () => {
        run = await runProgram({
            ...fleet,
            "sparks:postgres": [{ name: "app", host: "spark-2", snapshots: ["fixture", "before-import"] }],
            "sparks:forks": [{ name: "t1", source: "app@fixture" }, { name: "app-review", source: "app" }],
        });
    });
    const named = (name: string) => run.made.find((r) => r.name === name)!;

    test("each declared snapshot is taken once on the instance's host, by its owner, and dropped without force", () => {
        const snapshot = named("app-snapshot-fixture-snapshot");
        expect(snapshot.inputs.create).toBe("spark-pg snapshot 'app' 'fixture' --owner 'sparks/unit/app-snapshot-fixture' --json");
        expect(snapshot.inputs.delete).toBe("spark-pg drop-snapshot 'app' 'fixture' --if-exists");
        expect(snapshot.inputs.connection.value.host).toBe("10.0.0.12");
        expect(named("app-snapshot-before-import-snapshot").inputs.create).toContain("spark-pg snapshot 'app' 'before-import'");
    });

    test("a fork of a snapshot forks INSTANCE@SNAPSHOT after the snapshot is taken; other forks fork the instance", () => {
        const order = run.made.map((r) => r.name);
        expect(named("t1-pg").inputs.create.split(" && ")[0]).toBe("spark-pg fork 'app@fixture' 't1' --owner 'sparks/unit/t1' --password-stdin --json");
        expect(order.indexOf("app-snapshot-fixture-snapshot")).toBeLessThan(order.indexOf("t1-pg"));
        expect(named("app-review-pg").inputs.create.split(" && ")[0]).toBe("spark-pg fork 'app' 'app-review' --owner 'sparks/unit/app-review' --password-stdin --json");
    });
});
describe("Redis instances and forks", () => {
    let run: Awaited<ReturnType<typeof runProgram>>;
    beforeAll(async () => {
        run = await runProgram({
            ...fleet,
            "sparks:redis": {
                instances: [{ name: "cache", host: "spark-1" }],
                forks: [{ name: "cache-review-2", source: "cache-review" }, { name: "cache-review", source: "cache" }],
            },
        });
    });
    const named = (name: string) => run.made.find((r) => r.name === name)!;
    const created = (name: string) => named(`${name}-redis`).inputs.create.split(" && ");

    test("are components of their own, made on their root instance's host", () => {
        expect(run.made.filter((r) => r.type.startsWith("sparks:index:Redis")).map((r) => [r.type, r.name])).toEqual([
            ["sparks:index:RedisInstance", "cache"], ["sparks:index:RedisFork", "cache-review"], ["sparks:index:RedisFork", "cache-review-2"],
        ]);
        for (const db of ["cache", "cache-review", "cache-review-2"]) {
            expect(named(`${db}-redis`).inputs.connection.value).toMatchObject({ host: "10.0.0.11", hostKey: KEY_A });
        }
    });

    test("spark-redis makes each one by its owner, forks after their sources, and destroys it", () => {
        expect(created("cache")[0]).toBe("spark-redis new 'cache' --owner 'sparks/unit/cache' --password-stdin --json");
        expect(created("cache-review")[0]).toBe("spark-redis fork 'cache' 'cache-review' --owner 'sparks/unit/cache-review' --password-stdin --json");
        expect(created("cache-review-2")[0]).toBe("spark-redis fork 'cache-review' 'cache-review-2' --owner 'sparks/unit/cache-review-2' --password-stdin --json");
        const order = run.made.map((r) => r.name);
        expect(order.indexOf("cache-redis")).toBeLessThan(order.indexOf("cache-review-redis"));
        expect(order.indexOf("cache-review-redis")).toBeLessThan(order.indexOf("cache-review-2-redis"));
        expect(named("cache-redis").inputs.delete).toBe("spark-redis destroy --if-exists 'cache'");
    });

    test("each has its own password, on stdin only", () => {
        for (const db of ["cache", "cache-review", "cache-review-2"]) {
            expect(named(`${db}-password`).inputs).toMatchObject({ length: 32, special: false });
            expect(named(`${db}-redis`).inputs.stdin).toBe(`pw-${db}-password`);
            expect(named(`${db}-redis`).inputs.create).not.toContain("pw-");
        }
    });

    test("each puts its own name last in its lineage list, once, for verify", () => {
        expect(created("cache-review")[1]).toBe("printf '%s\\n' 'LREM sparks:verify:lineage 0 cache-review' 'RPUSH sparks:verify:lineage cache-review' " +
            "| spark-redis connect 'cache-review' --cli >/dev/null");
    });

    test("every host installs Redis and writes spark-redis's settings beside spark-pg's", () => {
        for (const [host, address] of [["spark-1", "10.0.0.11"], ["spark-2", "10.0.0.12"]]) {
            expect(named(`${host}-packages`).inputs.create).toMatch(/^HOST='[^']+' PACKAGES='[^']* redis-server' bash -c /);
            const tools = named(`${host}-tools`).inputs.create;
            expect(tools).toContain("REDIS_CONF='# Written by Sparks (pulumi) from the stack config sparks:redis. Local edits are overwritten.\n" +
                `SPARK_REDIS_ROOT=/srv/sparks/redis\nSPARK_REDIS_PORTS=6379-6449\nSPARK_REDIS_LISTEN="127.0.0.1 ${address}"\nSPARK_REDIS_APPENDFSYNC=always' `);
            expect(tools).toContain("PG_CONF='# Written by Sparks (pulumi) from the stack config sparks:pg. Local edits are overwritten.\n" +
                `SPARK_PG_ROOT=/srv/sparks/pg\nSPARK_PG_PORTS=5432-5499\nSPARK_PG_LISTEN="127.0.0.1 ${address}"\nSPARK_PG_ALLOW=""' `);
        }
    });

    test("exports each one's port, host, source and secret redis:// URI, apart from Postgres's", async () => {
        const redis = await new Promise<any>((r) => pulumi.output(run.exports.redis).apply(r));
        expect(Object.keys(redis)).toEqual(["cache", "cache-review", "cache-review-2"]);
        expect(redis.cache.uri).toMatch(/^redis:\/\/spark:pw-cache-password@10\.0\.0\.11:\d+$/);
        expect(redis["cache-review"]).toMatchObject({ host: "spark-1", source: "cache", port: expect.any(Number) });
        expect(redis.cache.source).toBeUndefined();
        expect(await pulumi.isSecret(run.exports.redis["cache-review"].uri)).toBe(true);
        expect(Object.keys(run.postgres)).toEqual(["app", "app-review", "app-review-2"]);
    });
});

describe("the components as a public API", () => {
    beforeAll(async () => { await pulumi.runtime.setMocks({
        newResource: (args) => ({ id: `${args.name}-id`, state: args.inputs }),
        call: () => ({}),
    }, "sparks", "unit", true); });

    test("refuse a name that is not a Sparks name, whoever calls them", () => {
        const { SparksHost } = require("../../components/sparksHost");
        const { PgInstance } = require("../../components/sparkPg");
        const host: HostSpec = { name: "spark-1", address: "10.0.0.11", port: 22, user: "root", hostKey: KEY_A, lab: false,
            pool: { device: "/dev/vdb", mountPoint: "/srv/sparks", wipeOnDelete: false } };
        const args = { host, ssh: { user: "root", agent: true, connectAttempts: 1 }, privateKey: undefined,
            pg: { ports: { first: 5432, last: 5499 }, listen: ["loopback"], allow: [], protectInstances: false },
            redis: { ports: { first: 6379, last: 6449 }, listen: ["loopback"] } };
        expect(() => new SparksHost("spark 1; reboot", args)).toThrow(
            'sparks:index:SparksHost: "spark 1; reboot" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)');
        const sparksHost = new SparksHost("spark-1", args);
        expect(() => new PgInstance("app'); DROP TABLE x; --", { host: sparksHost })).toThrow(
            /^sparks:index:PgInstance: "app'\); DROP TABLE x; --" is not a valid name/);
        const { RedisInstance } = require("../../components/sparkRedis");
        expect(() => new RedisInstance("cache\nFLUSHALL", { host: sparksHost })).toThrow(/^sparks:index:RedisInstance: "cache\\nFLUSHALL" is not a valid name/);
    });

    const emptyFleet = {
        ssh: { user: "root", agent: true, connectAttempts: 1 }, sshPrivateKey: undefined,
        pg: { ports: { first: 5432, last: 5499 }, listen: ["loopback"], allow: [], protectInstances: false },
        redis: { ports: { first: 6379, last: 6449 }, listen: ["loopback"], protectInstances: false, instances: [], forks: [] },
        hosts: [], postgres: [], forks: [], devContainers: [],
    };

    test("a fork whose source never appears fails the run instead of spinning", () => {
        const { deployFleet } = require("../../components/fleet");
        expect(() => deployFleet({ ...emptyFleet, forks: [{ name: "orphan", source: "nowhere", host: "spark-1" }] }))
            .toThrow("Postgres forks without a source: orphan (source nowhere)");
        expect(() => deployFleet({ ...emptyFleet, redis: { ...emptyFleet.redis, forks: [{ name: "orphan", source: "nowhere", host: "spark-1" }] } }))
            .toThrow("Redis forks without a source: orphan (source nowhere)");
    });
});

describe("the host gate", () => {
    const host: HostSpec = { name: "spark-1", address: "10.0.0.11", port: 22, user: "root", hostKey: KEY_A, lab: false,
        pool: { device: "/dev/vdb", mountPoint: "/srv/sparks", wipeOnDelete: false } };

    test("lets through the pinned key, whatever the keyscan prefix", () => {
        expect(gateVerdict(host, KEY_A, `10.0.0.11 ${KEY_A}\n`)).toEqual({});
        expect(gateVerdict({ ...host, port: 2222 }, KEY_A, `[10.0.0.11]:2222 ${KEY_A}\n`)).toEqual({});
    });

    test("refuses a host whose key is not the pinned one, naming it", () => {
        expect(gateVerdict(host, KEY_A, `10.0.0.11 ${KEY_B}\n`).refuse).toMatch(
            /^host spark-1 \(10\.0\.0\.11:22\) presented host key ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBB\S+, not the pinned .*: refusing to connect/,
        );
    });

    test("says where on the server to read the new key, for the pinned key's type", () => {
        const ecdsa = { ...host, hostKey: "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI" };
        expect(gateVerdict(host, KEY_A, `10.0.0.11 ${KEY_B}\n`).refuse).toContain("/etc/ssh/ssh_host_ed25519_key.pub");
        expect(gateVerdict(ecdsa, ecdsa.hostKey, `10.0.0.11 ${KEY_B}\n`).refuse).toContain("/etc/ssh/ssh_host_ecdsa_key.pub");
    });

    test("a host that did not answer is a warning naming it, not a refusal: it blocks only its own changes", () => {
        expect(gateVerdict(host, KEY_A, "")).toEqual({
            warn: "host spark-1 (10.0.0.11:22) did not answer ssh within 3 s: its resources with changes will fail until it is back " +
                "(check that it is up and reachable, then run `pulumi up` again); the rest go ahead",
        });
    });
});

describe("dev and prod", () => {
    const stackConfig = (stack: string): Record<string, unknown> =>
        YAML.parse(fs.readFileSync(path.join(__dirname, "..", "..", `Pulumi.${stack}.yaml`), "utf8")).config;
    /** Each resource kind the program made, with how many of it. */
    const kinds = (made: Made[]) => made.reduce((counts, r) => ({ ...counts, [r.type]: (counts[r.type] ?? 0) + 1 }), {} as Record<string, number>);

    test("build the same resource kinds from the same code; dev adds only the lab machines its config declares", async () => {
        // As previewed: no lab machine exists yet, and no host is contacted.
        const dev = kinds((await runProgram(stackConfig("dev"), true)).made);
        const prod = kinds((await runProgram(stackConfig("prod"), true)).made);
        const labHosts = (stackConfig("dev")["sparks:lab"] as { hosts: string[] }).hosts.length;
        expect(labHosts).toBeGreaterThan(0);
        expect(dev).toEqual({ ...prod, "sparks:index:LabHost": labHosts, "command:local:Command": labHosts });
        expect(stackConfig("prod")["sparks:lab"]).toBeUndefined();
    });
});

describe("dev containers", () => {
    const OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC ada@laptop";
    const withContainers = {
        ...fleet,
        "sparks:devContainers": [
            { name: "ada", host: "spark-1", address: "10.0.0.50", ownerKeys: [OWNER_KEY], packages: ["jq", "gcc"], cpus: 2, memoryMb: 4096, idleStopMinutes: 30 },
            { name: "bob", host: "spark-1", address: "10.0.0.51", ownerKeys: [OWNER_KEY], keepHome: false },
        ],
    };
    let run: Awaited<ReturnType<typeof runProgram>>;
    beforeAll(async () => { run = await runProgram(withContainers); });
    const named = (name: string) => run.made.find((r) => r.name === name)!;

    test("only a host with containers gets a base image, made after its verify and pruned on delete", () => {
        expect(run.made.filter((r) => r.name.endsWith("-dev-image")).map((r) => r.name)).toEqual(["spark-1-dev-image"]);
        expect(named("spark-1-dev-image").inputs.create).toMatch(/^spark-dev image --json # tools [0-9a-f]+$/);
        expect(named("spark-1-dev-image").inputs.delete).toBe("spark-dev image --prune --json");
    });

    test("each container is created from the host's image with its settings, its keys on stdin, and verified", () => {
        expect(named("ada-dev").inputs.create).toBe(
            "'spark-dev' 'create' 'ada' '--address' '10.0.0.50' '--owner' 'sparks/unit/ada' '--image' 'bookworm-0123456789abcdef' " +
            "'--keys-stdin' '--packages' 'jq gcc' '--cpus' '2' '--memory-mb' '4096' '--idle-minutes' '30' '--json'");
        expect(named("ada-dev").inputs.stdin).toBe(`${OWNER_KEY}\n`);
        expect(named("ada-dev").inputs.create).not.toContain("AAAA");
        expect(named("ada-dev-verify").inputs.create).toMatch(/^'spark-dev' 'verify' 'ada' '--restart' '--json' # [0-9a-f]{16}$/);
        expect(named("ada-dev-verify").inputs.update).toMatch(/^'spark-dev' 'verify' 'ada' '--json' # [0-9a-f]{16}$/);
    });

    test("removing a container keeps its home unless keepHome is false", () => {
        expect(named("ada-dev").inputs.delete).toBe("'spark-dev' 'destroy' 'ada' '--keep-home'");
        expect(named("bob-dev").inputs.delete).toBe("'spark-dev' 'destroy' 'bob'");
    });

    test("no limits and no packages are passed as such, never as empty numbers", () => {
        expect(named("bob-dev").inputs.create).toContain("'--packages' '' '--idle-minutes' '0' '--json'");
        expect(named("bob-dev").inputs.create).not.toMatch(/--cpus|--memory-mb/);
    });

    test("the stack exports each container's status", async () => {
        const containers = await new Promise<any>((r) => pulumi.output(run.exports.devContainers).apply(r));
        expect(Object.keys(containers)).toEqual(["ada", "bob"]);
    });
});

describe("the skills repo", () => {
    const PUSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC ada@laptop";
    const withSkills = {
        ...fleet,
        "sparks:devContainers": [{ name: "ada", host: "spark-2", address: "10.0.0.50", ownerKeys: [PUSH_KEY] }],
        "sparks:skillsRepo": { host: "spark-1", pushKeys: [PUSH_KEY] },
    };
    let run: Awaited<ReturnType<typeof runProgram>>;
    beforeAll(async () => { run = await runProgram(withSkills); });
    const named = (name: string) => run.made.find((r) => r.name === name)!;

    test("is served on its host after its setup, push keys on stdin, its data kept on removal, then verified", () => {
        expect(named("skills-serve").inputs.create).toBe(
            "'spark-skills' 'init' '--address' '10.0.0.11' '--port' '8080' '--ssh-port' '22' '--seed' 'example' '--keys-stdin' '--json'");
        expect(named("skills-serve").inputs.stdin).toBe(`${PUSH_KEY}\n`);
        expect(named("skills-serve").inputs.delete).toBe("'spark-skills' 'destroy' '--keep-data' '--json'");
        expect(named("skills-verify").inputs.create).toMatch(/^spark-skills verify --json # [0-9a-f]{16}$/);
    });

    test("every dev container, on any host, syncs it, and its verify runs again after each verify of the repo", () => {
        expect(named("ada-dev").inputs.create).toContain("'--skills-url' 'http://10.0.0.11:8080/skills.git' '--json'");
        expect(named("ada-dev-verify").inputs.create).toMatch(/^'spark-dev' 'verify' 'ada' '--restart' '--json' # [0-9a-f]{16} skills 5ca1ab1e$/);
    });

    test("the stack exports its URLs and commits", async () => {
        const skills = await new Promise<any>((r) => pulumi.output(run.exports.skillsRepo).apply(r));
        expect(skills).toEqual({ url: "http://10.0.0.11:8080/skills.git", pushUrl: "sparks-skills@10.0.0.11:skills.git", host: "spark-1", head: "c0ffee", verifyCommit: "5ca1ab1e" });
    });
});
