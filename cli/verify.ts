// `sparks verify`: proves a deployed stack works, live, from the outside. Every check runs, also
// after one fails, and each gives a result line (check, target, ok, detail, time):
// - on each host, over SSH as the deployment logs in: the same checks as the verify step of
//   `pulumi up` (pool, tools, KVM, TLS certificate, spark-pg units) and its dev containers (SSH
//   in as dev, a KVM guest, the same home), and its databases: one the
//   stack made (spark-pg records each database's owner, PROJECT/STACK/NAME) but no longer manages
//   is an orphan, and a failure; one made by hand (no owner) is listed as unmanaged (spark-redis
//   records owners the same way);
// - every Postgres instance and fork over the network with node-postgres: each answers with its
//   own password over TLS verified against its host's certificate (verify-full), a fork holds its
//   source's data as of the fork, and a write on either side stays on that side;
// - every Redis instance and fork with node-redis: each answers as spark with its own password,
//   holds its lineage, a fork refuses its source's password, and a write stays on its side.
// URIs hold passwords: they are kept in memory, never printed.
import { randomUUID } from "crypto";
import * as tls from "tls";
import { Client } from "pg";
import { createClient, RedisClientType } from "redis";
import { setupScript } from "../components/shell";
import { HostRunner } from "./hostAccess";

/** A database as the stack outputs describe it (`postgres`, `redis`). */
export interface DatabaseOutput { port: number; uri: string; source?: string; host?: string }

export interface StackOutputs {
    hosts?: Record<string, { kvmApiVersion: number; tools: string; pool: string; hostKey?: string; pgCertificate?: { pem: string } }>;
    postgres?: Record<string, DatabaseOutput>;
    redis?: Record<string, DatabaseOutput>;
}

/** The host tools that run databases: the stack output that names each one's, and how results name
 *  them (Redis names are a namespace of their own, so they say so). */
export const DATABASE_TOOLS = [
    { tool: "spark-pg", output: "postgres", target: (name: string) => name },
    { tool: "spark-redis", output: "redis", target: (name: string) => `redis:${name}` },
] as const;
const [POSTGRES, REDIS] = DATABASE_TOOLS;

/** One check's outcome: what was checked, on what, whether it passed, what was found, how long it took. */
export interface CheckResult {
    check: string;
    target: string;
    ok: boolean;
    detail: string;
    ms: number;
}
/** A database's connection: its URI, and the certificate its host's TLS must present. */
interface Target { uri: string; certificate: string }

/**
 * A node-postgres client for `target` with sslmode=verify-full done explicitly: the server must
 * present a certificate signed by (here: equal to) its host's, valid for the address in the URI.
 * The URI's own sslmode is dropped, or node-postgres would let it replace these settings.
 */
function clientFor(target: Target): Client {
    const url = new URL(target.uri);
    const server = url.hostname.replace(/^\[(.*)\]$/, "$1");
    url.search = "";
    return new Client({
        connectionString: url.toString(),
        connectionTimeoutMillis: 10_000,
        ssl: { ca: target.certificate, rejectUnauthorized: true, checkServerIdentity: (_name, cert) => tls.checkServerIdentity(server, cert) },
    });
}

/** Runs `use` on a connection that `open` makes with the database's own credentials, and closes it. */
async function withConnection<C, T>(open: () => Promise<C>, close: (connection: C) => unknown, use: (connection: C) => Promise<T>): Promise<T> {
    let connection: C;
    try {
        connection = await open();
    } catch (error) {
        throw new Error(`cannot connect with its own credentials: ${(error as Error).message}`);
    }
    try {
        return await use(connection);
    } finally {
        await close(connection);
    }
}

const withClient = <T>(target: Target, use: (client: Client) => Promise<T>) => withConnection(async () => {
    const client = clientFor(target);
    await client.connect();
    return client;
}, (client) => client.end(), use);

const lineageOf = (client: Client) =>
    client.query("SELECT name FROM sparks_verify.lineage ORDER BY name").then((r) => r.rows.map((row) => row.name as string));

/** A node-redis client logged in with `uri`'s credentials; one that cannot is an error at once, never retried. */
async function redisClient(uri: string): Promise<RedisClientType> {
    const client = createClient({ url: uri, socket: { connectTimeout: 10_000, reconnectStrategy: false } });
    // A failure rejects the call that met it; the client emits it too, and an unheard 'error' event would end the process.
    client.on("error", () => undefined);
    await client.connect();
    return client;
}

const withRedis = <T>(uri: string, use: (client: RedisClientType) => Promise<T>) => withConnection(() => redisClient(uri), (client) => client.destroy(), use);

/** The Redis list each database appends its name to (components/sparkRedis.ts), and the prefix of verify's probe keys. */
const REDIS_LINEAGE = "sparks:verify:lineage";
const REDIS_PROBE = "sparks:verify:probe:";

/** What verify needs beyond the outputs to look at the hosts themselves. */
export interface HostChecks {
    /** Runs a command on a host of the stack. */
    run: HostRunner;
    /** The owner prefix of this stack's databases: `PROJECT/STACK/`. */
    ownerPrefix: string;
    /** The host tools' version the hosts must have: this checkout's (contentHash of its host/). */
    toolsHash: string;
}

/** Runs `body` as check `check` of `target`: its detail, or the failure's message. */
async function timedCheck(check: string, target: string, body: () => Promise<string>): Promise<CheckResult> {
    const started = Date.now();
    try {
        return { check, target, ok: true, detail: await body(), ms: Date.now() - started };
    } catch (error) {
        return { check, target, ok: false, detail: (error as Error).message, ms: Date.now() - started };
    }
}

/** One host's databases as its tools list them: orphans of this stack fail, hand-made ones are named. */
async function checkOwnership(host: string, outputs: StackOutputs, checks: HostChecks): Promise<string> {
    const orphans: string[] = [];
    const unmanaged: string[] = [];
    for (const { tool, output, target } of DATABASE_TOOLS) {
        const listed = JSON.parse(await checks.run(host, `${tool} list --json`)) as { name: string; owner: string | null }[];
        const managed = new Set(Object.entries(outputs[output] ?? {}).filter(([, db]) => db.host === host).map(([name]) => name));
        const mine = listed.filter((db) => db.owner?.startsWith(checks.ownerPrefix) && !managed.has(db.name));
        if (mine.length > 0) {
            orphans.push(`orphan database(s) ${mine.map((db) => `${target(db.name)} (owner ${db.owner})`).join(", ")}: ` +
                `made by this stack, no longer managed by it; destroy them (${tool} destroy NAME) or put them back in the config`);
        }
        unmanaged.push(...listed.filter((db) => db.owner === null).map((db) => target(db.name)));
    }
    if (orphans.length > 0) throw new Error(orphans.join("; "));
    return `no orphan databases; made by hand (unmanaged): ${unmanaged.length > 0 ? unmanaged.join(", ") : "none"}`;
}

/** How verify checks one kind of database, by name; each throws with what it found wrong, or says what it found. */
interface DatabaseChecks {
    /** How results name it. */
    target(name: string): string;
    /** It answers with its own credentials. */
    connect(name: string): Promise<string>;
    /** It holds the data of `chain` (root first, itself last). */
    lineage(name: string, chain: string[]): Promise<string>;
    /** A fork refuses its source's credentials. */
    credentials?(name: string, source: string): Promise<string>;
    /** A probe token, written to, looked for in and removed from one database. */
    probe: {
        write(name: string, token: string): Promise<unknown>;
        seen(name: string, token: string): Promise<boolean>;
        remove(name: string, token: string): Promise<unknown>;
    };
}

/** Every check of one kind's databases: each connects and holds its lineage; each fork keeps to itself. */
async function checkDatabases(databases: Record<string, DatabaseOutput>, kind: DatabaseChecks): Promise<CheckResult[]> {
    const results: CheckResult[] = [];
    const chainOf = (name: string): string[] => {
        const source = databases[name].source;
        return source === undefined || databases[source] === undefined ? [name] : [...chainOf(source), name];
    };
    const reachable = new Set<string>();
    for (const name of Object.keys(databases)) {
        const connect = await timedCheck("connect", kind.target(name), () => kind.connect(name));
        results.push(connect);
        if (!connect.ok) continue;
        reachable.add(name);
        results.push(await timedCheck("lineage", kind.target(name), () => kind.lineage(name, chainOf(name))));
    }
    for (const [name, db] of Object.entries(databases)) {
        const source = db.source;
        if (source === undefined || databases[source] === undefined || !reachable.has(name)) continue;
        if (kind.credentials !== undefined) results.push(await timedCheck("credentials", kind.target(name), () => kind.credentials!(name, source)));
        if (!reachable.has(source)) continue;
        results.push(await timedCheck("diverges", kind.target(name), async () => {
            const token = `verify-${randomUUID()}`;
            for (const [writer, reader] of [[name, source], [source, name]]) {
                await kind.probe.write(writer, token);
                const leaked = await kind.probe.seen(reader, token);
                await kind.probe.remove(writer, token);
                if (leaked) throw new Error(`a write in ${writer} showed up in ${reader}`);
            }
            return `diverges from ${source} in both directions`;
        }));
    }
    return results;
}

/** Postgres over TLS verified against its host's certificate; lineage and probes in the sparks_verify schema. */
function postgresChecks(outputs: StackOutputs): DatabaseChecks {
    const databases = outputs.postgres ?? {};
    const target = (name: string): Target => {
        const db = databases[name];
        const certificate = db.host === undefined ? undefined : outputs.hosts?.[db.host]?.pgCertificate?.pem;
        if (certificate === undefined) throw new Error(`no TLS certificate for its host ${db.host ?? "(unknown)"} in the stack outputs; run pulumi up`);
        return { uri: db.uri, certificate };
    };
    return {
        target: POSTGRES.target,
        connect: async (name) => {
            const db = databases[name];
            await withClient(target(name), (c) => c.query("SELECT 1"));
            return `answers on ${db.host}:${db.port} with its own password, over TLS verified against ${db.host}'s certificate`;
        },
        lineage: async (name, chain) => {
            const { lineage, cluster } = await withClient(target(name), async (c) => ({
                lineage: await lineageOf(c),
                cluster: (await c.query("SHOW cluster_name")).rows[0].cluster_name as string,
            }));
            // spark-pg names each postmaster after its instance: the URI reaches this one.
            if (cluster !== name) throw new Error(`its URI reaches instance ${JSON.stringify(cluster)}, not ${name}`);
            const holds = (names: string[]) => JSON.stringify(lineage) === JSON.stringify([...names].sort());
            if (holds(chain)) return `holds the data of ${chain.join(" <- ")}`;
            // A fork reset since (spark-pg reset) holds its source's data again, without its own mark.
            if (chain.length > 1 && holds(chain.slice(0, -1))) return `holds the data of ${chain.slice(0, -1).join(" <- ")}, reset to it since it was made`;
            throw new Error(`holds the data of ${JSON.stringify(lineage)}, expected that of ${JSON.stringify(chain)}`);
        },
        probe: {
            write: (name, token) => withClient(target(name), (c) => c.query("INSERT INTO sparks_verify.probe VALUES ($1)", [token])),
            seen: (name, token) => withClient(target(name), (c) => c.query("SELECT 1 FROM sparks_verify.probe WHERE token = $1", [token]))
                .then((r) => r.rowCount !== 0),
            remove: (name, token) => withClient(target(name), (c) => c.query("DELETE FROM sparks_verify.probe WHERE token = $1", [token])),
        },
    };
}

/** Redis as user spark with each database's own password; lineage in a list, probes as keys of their own. */
function redisChecks(outputs: StackOutputs): DatabaseChecks {
    const databases = outputs.redis ?? {};
    const on = <T>(name: string, use: (client: RedisClientType) => Promise<T>) => withRedis(databases[name].uri, use);
    return {
        target: REDIS.target,
        connect: async (name) => {
            const db = databases[name];
            const user = String(await on(name, (c) => c.sendCommand(["ACL", "WHOAMI"])));
            if (user !== "spark") throw new Error(`its URI logs in as ${JSON.stringify(user)}, not spark`);
            return `answers on ${db.host}:${db.port} as spark with its own password`;
        },
        lineage: async (name, chain) => {
            // Each database's own name is last in its list: the URI reaches this very one.
            const lineage = await on(name, (c) => c.lRange(REDIS_LINEAGE, 0, -1));
            if (JSON.stringify(lineage) !== JSON.stringify(chain)) {
                throw new Error(`holds the data of ${JSON.stringify(lineage)}, expected that of ${JSON.stringify(chain)}`);
            }
            return `holds the data of ${chain.join(" <- ")}`;
        },
        credentials: async (name, source) => {
            const borrowed = new URL(databases[name].uri);
            borrowed.password = new URL(databases[source].uri).password;
            let client: RedisClientType;
            try {
                client = await redisClient(borrowed.toString());
            } catch (error) {
                const message = (error as Error).message;
                if (message.startsWith("WRONGPASS")) return `refuses ${source}'s password`;
                throw new Error(`cannot tell whether it takes ${source}'s password: ${message}`);
            }
            client.destroy();
            throw new Error(`takes ${source}'s password: a fork must have a password of its own`);
        },
        probe: {
            write: (name, token) => on(name, (c) => c.set(`${REDIS_PROBE}${token}`, token)),
            seen: (name, token) => on(name, (c) => c.exists(`${REDIS_PROBE}${token}`)).then((found) => found !== 0),
            remove: (name, token) => on(name, (c) => c.del(`${REDIS_PROBE}${token}`)),
        },
    };
}

/** The host checks of the verify step (components/setup/verify.sh), run live over SSH; the tools must be this checkout's. */
async function hostStepChecks(name: string, host: NonNullable<StackOutputs["hosts"]>[string], checks: HostChecks): Promise<CheckResult[]> {
    const script = setupScript("verify", "check", { HOST: name, MOUNT_POINT: host.pool, TOOLS_HASH: checks.toolsHash });
    const started = Date.now();
    let out: string;
    try {
        out = await checks.run(name, script);
    } catch (error) {
        return [{ check: "ssh", target: name, ok: false, detail: (error as Error).message, ms: Date.now() - started }];
    }
    const ms = Date.now() - started;
    return out.trim().split("\n").map((line) => ({ ...(JSON.parse(line) as { check: string; ok: boolean; detail: string }), target: name, ms }));
}

/**
 * Runs every check: with `hostChecks`, live on the hosts as well; without, the hosts are judged by
 * what the last `up` recorded. Never throws for a failed check: each one is a result.
 */
export async function verifyStack(outputs: StackOutputs, hostChecks?: HostChecks): Promise<CheckResult[]> {
    const results: CheckResult[] = [];
    for (const [name, host] of Object.entries(outputs.hosts ?? {})) {
        if (hostChecks === undefined) {
            results.push(await timedCheck("recorded", name, async () => {
                if (host.kvmApiVersion !== 12) throw new Error(`KVM API version ${host.kvmApiVersion}, expected 12`);
                return `as pulumi up checked it: pool ${host.pool}, tools ${host.tools}, KVM API ${host.kvmApiVersion}`;
            }));
            continue;
        }
        const steps = await hostStepChecks(name, host, hostChecks);
        results.push(...steps);
        if (steps.some((r) => r.check === "ssh")) continue;
        results.push(await timedCheck("orphans", name, () => checkOwnership(name, outputs, hostChecks)));
    }
    results.push(...await checkDatabases(outputs.postgres ?? {}, postgresChecks(outputs)));
    results.push(...await checkDatabases(outputs.redis ?? {}, redisChecks(outputs)));
    return results;
}
