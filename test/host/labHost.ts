// One real lab host set up the way `pulumi up` sets up a Sparks host (the same setup scripts:
// packages, btrfs pool, staging, host tools), for the spark-pg and spark-redis tests. The lab lives in its own
// directory (SPARKS_LAB_DIR when set, else a fresh one) and is taken down at the end; ssh pins the
// host key the lab recorded (test/lab/labClient). Clients verify each host's TLS certificate, as
// `spark-pg cert` prints it.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Client } from "pg";
import { createClient, RedisClientType } from "redis";
import { setupScript } from "../../components/shell";
import { contentHash, STAGING_ROOT } from "../../components/sparksHost";
import { labDown, labUp } from "../e2e/lab";
import { mustSucceed, ROOT, run, RunResult } from "../e2e/stack";
import { sshArgs, writeKnownHosts } from "../lab/labClient";

export const POOL = "/srv/sparks";
export const PG_ROOT = `${POOL}/pg`;
export const REDIS_ROOT = `${POOL}/redis`;
export const DEV_ROOT = `${POOL}/dev`;
export const SKILLS_ROOT = `${POOL}/skills`;
export const PG_BIN = "/usr/lib/postgresql/15/bin";

export interface SparksLabHost {
    name: string;
    address: string;
    /** Runs a shell command on the host as root, never throwing; killed after timeoutMs (15 min). */
    sh(command: string, input?: string, timeoutMs?: number): Promise<RunResult>;
    /** Runs a shell command on the host; throws with its output unless it exits 0. */
    ok(command: string, input?: string): Promise<string>;
    /** Runs `spark-pg ARGS --json` and parses its output; throws unless it exits 0. */
    sparkPg(args: string, input?: string): Promise<any>;
    /** Runs `spark-redis ARGS --json` and parses its output; throws unless it exits 0. */
    sparkRedis(args: string, input?: string): Promise<any>;
    /** Runs `TOOL ARGS` (spark-pg unless told), which must fail with nothing on stdout; returns its one stderr line. */
    refused(args: string, input?: string, tool?: string): Promise<string>;
    /** The host's TLS certificate (PEM), which clients of its instances trust. */
    cert: string;
    /** Brings the lab down and removes its directory. */
    down(): Promise<void>;
}

/** Certificates to trust, by the host name or address a URI names; filled in by sparksLabHost. */
const trustedCerts = new Map<string, string>();

/** spark-redis's settings on a test host, as SparksHost writes them. */
export const REDIS_CONF = { SPARK_REDIS_PORTS: "6379-6449", SPARK_REDIS_LISTEN: "127.0.0.1 10.89.42.11", SPARK_REDIS_APPENDFSYNC: "always" };

/** Brings up a one-host lab in a fresh directory and makes the host a Sparks host with spark-pg and spark-redis. */
export async function sparksLabHost(pgConf: Record<string, string>, extraPackages: string[] = []): Promise<SparksLabHost> {
    const given = process.env.SPARKS_LAB_DIR;
    const labDir = given ?? fs.mkdtempSync(path.join(os.tmpdir(), "sparkpg-lab-"));
    const down = async () => {
        await labDown(labDir);
        if (given === undefined) fs.rmSync(labDir, { recursive: true, force: true });
    };

    try {
        const [status] = await labUp(1, labDir);
        const knownHosts = path.join(labDir, "known_hosts.spark-pg-test");
        writeKnownHosts(knownHosts, [status]);
        const sh = (command: string, input?: string, timeoutMs = 15 * 60 * 1000) =>
            run("ssh", sshArgs(status, knownHosts, command), { input, timeoutMs });
        const ok = async (command: string, input?: string) => mustSucceed(`on ${status.name}: ${command}`, await sh(command, input)).stdout;
        const sparkPg = async (args: string, input?: string) => JSON.parse(await ok(`spark-pg ${args} --json`, input));
        const sparkRedis = async (args: string, input?: string) => JSON.parse(await ok(`spark-redis ${args} --json`, input));
        const refused = async (args: string, input?: string, tool = "spark-pg") => {
            const result = await sh(`${tool} ${args}`, input);
            expect(result.stdout).toBe("");
            return refusal(result);
        };

        const hostVars = { HOST: status.name };
        await ok(setupScript("packages", "create", { ...hostVars, PACKAGES: ["btrfs-progs", "postgresql-15", "redis-server", ...extraPackages].join(" ") }));
        await ok(setupScript("pool", "create", { ...hostVars, DEVICE: "/dev/vdb", MOUNT_POINT: POOL, WIPE_ON_DELETE: "true" }));
        // The host tools as the installer ships them: host/ staged on the host, then installed.
        await ok(setupScript("staging", "create", { ...hostVars, STAGING_ROOT }));
        const staging = `${STAGING_ROOT}/tools-test`;
        const tarball = path.join(labDir, "host.tgz");
        mustSucceed("tar host/", await run("tar", ["-C", path.join(ROOT, "host"), "-czf", tarball, "."]));
        await ok(`rm -rf ${staging} && mkdir -p ${staging} && base64 -d | tar -C ${staging} -xzf -`, fs.readFileSync(tarball).toString("base64"));
        const confFile = (settings: Record<string, string>) => Object.entries(settings).map(([k, v]) => `${k}="${v}"`).join("\n");
        await ok(setupScript("tools", "create", {
            ...hostVars, STAGING: staging, TOOLS_HASH: contentHash(path.join(ROOT, "host")), POOL_DIR: PG_ROOT, REDIS_DIR: REDIS_ROOT,
            PG_CONF: confFile({ SPARK_PG_ROOT: PG_ROOT, ...pgConf }), REDIS_CONF: confFile({ SPARK_REDIS_ROOT: REDIS_ROOT, ...REDIS_CONF }),
            DEV_DIR: DEV_ROOT, SKILLS_DIR: SKILLS_ROOT,
        }));
        const cert = await ok("spark-pg cert");
        for (const name of [status.address, "127.0.0.1", "localhost"]) trustedCerts.set(name, cert);
        return { name: status.name, address: status.address, sh, ok, sparkPg, sparkRedis, refused, cert, down };
    } catch (error) {
        await down().catch(() => undefined);
        throw error;
    }
}

/** Destroys every instance on the host, with its snapshots, so the next suite finds none. */
export async function clearHost(host: SparksLabHost | undefined): Promise<void> {
    if (host === undefined) return;
    for (const { name } of await host.sparkPg("list")) await host.ok(`spark-pg destroy ${name} --force`);
    const left = await host.sparkPg("list");
    if (left.length) throw new Error(`instances left on ${host.name}: ${JSON.stringify(left)}`);
}

/** The one line a refused command printed on stderr: it must have failed, and said just that. */
export function refusal(result: RunResult): string {
    expect(result.code).not.toBe(0);
    const lines = result.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    return lines[0];
}

/** Connects to a libpq URI with a password; the caller ends the client. */
export async function connect(uri: string, password: string): Promise<Client> {
    // The URI as spark-pg prints it (no password), the password given apart, as a client would;
    // sslmode=verify-full: TLS, the host's certificate verified against its name or address.
    const url = new URL(uri);
    const verify = url.searchParams.get("sslmode") === "verify-full";
    const ca = trustedCerts.get(url.hostname);
    if (verify && ca === undefined) throw new Error(`no certificate known for ${url.hostname}`);
    const client = new Client({
        host: url.hostname, port: Number(url.port), user: url.username, database: url.pathname.slice(1),
        password, connectionTimeoutMillis: 5000, ssl: verify ? { ca, rejectUnauthorized: true } : false,
    });
    await client.connect();
    return client;
}

/** Runs one query over a fresh connection and returns its rows. */
export async function query(uri: string, password: string, sql: string): Promise<any[]> {
    const client = await connect(uri, password);
    try {
        return (await client.query(sql)).rows;
    } finally {
        await client.end();
    }
}

/** pgbench as the postgres OS user over the local socket. */
export function pgbench(port: number, args: string): string {
    return `runuser -u postgres -- ${PG_BIN}/pgbench -h /run/postgresql -p ${port} ${args}`;
}

/** pg_amcheck of every database of an instance, heap and btree, with the extension installed as needed. */
export function amcheck(port: number): string {
    return `runuser -u postgres -- ${PG_BIN}/pg_amcheck -h /run/postgresql -p ${port} --all --install-missing --heapallindexed`;
}

/** A node-redis client on a spark-redis URI (as the tool prints it, no password) as user spark; the caller closes it. */
export async function redisConnect(uri: string, password: string, username = "spark"): Promise<RedisClientType> {
    const url = new URL(uri);
    const client: RedisClientType = createClient({
        socket: { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: Number(url.port), connectTimeout: 5000, reconnectStrategy: false },
        username, password,
    });
    // A refused login is thrown by connect; the error event would otherwise go unhandled.
    client.on("error", () => undefined);
    await client.connect();
    return client;
}

/** Runs `use` on a fresh client and closes it. */
export async function withRedis<T>(uri: string, password: string, use: (client: RedisClientType) => Promise<T>): Promise<T> {
    const client = await redisConnect(uri, password);
    try {
        return await use(client);
    } finally {
        client.destroy();
    }
}
