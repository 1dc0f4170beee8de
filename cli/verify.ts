// `sparks verify`: proves a deployed stack works, live, from the outside. Every check runs, also
// after one fails, and each gives a result line (check, target, ok, detail, time):
// - on each host, over SSH as the deployment logs in: the same checks as the verify step of
//   `pulumi up` (pool, tools, KVM, TLS certificate, spark-pg units) and its dev containers (SSH
//   in as dev, a KVM guest, the same home), and its databases: one the
//   stack made (spark-pg records each database's owner, PROJECT/STACK/NAME) but no longer manages
//   is an orphan, and a failure; one made by hand (no owner) is listed as unmanaged;
// - every Postgres instance and fork over the network with node-postgres: each answers with its
//   own password over TLS verified against its host's certificate (verify-full), a fork holds its
//   source's data as of the fork, and a write on either side stays on that side.
// URIs hold passwords: they are kept in memory, never printed.
import { randomUUID } from "crypto";
import * as tls from "tls";
import { Client } from "pg";
import { setupScript } from "../components/shell";
import { HostRunner } from "./hostAccess";

export interface StackOutputs {
    hosts?: Record<string, { kvmApiVersion: number; tools: string; pool: string; hostKey?: string; pgCertificate?: { pem: string } }>;
    postgres?: Record<string, { port: number; uri: string; source?: string; host?: string }>;
}

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

async function withClient<T>(target: Target, use: (client: Client) => Promise<T>): Promise<T> {
    const client = clientFor(target);
    try {
        await client.connect();
    } catch (error) {
        throw new Error(`cannot connect with its own credentials: ${(error as Error).message}`);
    }
    try {
        return await use(client);
    } finally {
        await client.end();
    }
}

const lineageOf = (client: Client) =>
    client.query("SELECT name FROM sparks_verify.lineage ORDER BY name").then((r) => r.rows.map((row) => row.name as string));

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

/** One host's databases as spark-pg lists them: orphans of this stack fail, hand-made ones are named. */
async function checkOwnership(host: string, outputs: StackOutputs, checks: HostChecks): Promise<string> {
    const listed = JSON.parse(await checks.run(host, "spark-pg list --json")) as { name: string; owner: string | null }[];
    const managed = new Set(Object.entries(outputs.postgres ?? {}).filter(([, db]) => db.host === host).map(([name]) => name));
    const orphans = listed.filter((db) => db.owner?.startsWith(checks.ownerPrefix) && !managed.has(db.name));
    if (orphans.length > 0) {
        throw new Error(`orphan database(s) ${orphans.map((db) => `${db.name} (owner ${db.owner})`).join(", ")}: ` +
            "made by this stack, no longer managed by it; destroy them (spark-pg destroy NAME) or put them back in the config");
    }
    const unmanaged = listed.filter((db) => db.owner === null).map((db) => db.name);
    return `no orphan databases; made by hand (unmanaged): ${unmanaged.length > 0 ? unmanaged.join(", ") : "none"}`;
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
    const databases = outputs.postgres ?? {};
    const target = (name: string): Target => {
        const db = databases[name];
        const certificate = db.host === undefined ? undefined : outputs.hosts?.[db.host]?.pgCertificate?.pem;
        if (certificate === undefined) throw new Error(`no TLS certificate for its host ${db.host ?? "(unknown)"} in the stack outputs; run pulumi up`);
        return { uri: db.uri, certificate };
    };
    const chainOf = (name: string): string[] => {
        const source = databases[name].source;
        return source === undefined || databases[source] === undefined ? [name] : [...chainOf(source), name];
    };
    const reachable = new Set<string>();
    for (const [name, db] of Object.entries(databases)) {
        const connect = await timedCheck("connect", name, async () => {
            await withClient(target(name), (c) => c.query("SELECT 1"));
            return `answers on ${db.host}:${db.port} with its own password, over TLS verified against ${db.host}'s certificate`;
        });
        results.push(connect);
        if (!connect.ok) continue;
        reachable.add(name);
        results.push(await timedCheck("lineage", name, async () => {
            const { lineage, cluster } = await withClient(target(name), async (c) => ({
                lineage: await lineageOf(c),
                cluster: (await c.query("SHOW cluster_name")).rows[0].cluster_name as string,
            }));
            // spark-pg names each postmaster after its instance: the URI reaches this one.
            if (cluster !== name) throw new Error(`its URI reaches instance ${JSON.stringify(cluster)}, not ${name}`);
            const chain = chainOf(name);
            const holds = (names: string[]) => JSON.stringify(lineage) === JSON.stringify([...names].sort());
            if (holds(chain)) return `holds the data of ${chain.join(" <- ")}`;
            // A fork reset since (spark-pg reset) holds its source's data again, without its own mark.
            if (chain.length > 1 && holds(chain.slice(0, -1))) return `holds the data of ${chain.slice(0, -1).join(" <- ")}, reset to it since it was made`;
            throw new Error(`holds the data of ${JSON.stringify(lineage)}, expected that of ${JSON.stringify(chain)}`);
        }));
    }
    for (const [name, db] of Object.entries(databases)) {
        if (db.source === undefined || !reachable.has(name) || !reachable.has(db.source)) continue;
        const source = db.source;
        results.push(await timedCheck("diverges", name, async () => {
            const token = `verify-${randomUUID()}`;
            for (const [writer, reader] of [[name, source], [source, name]]) {
                await withClient(target(writer), (c) => c.query("INSERT INTO sparks_verify.probe VALUES ($1)", [token]));
                const leaked = await withClient(target(reader), (c) => c.query("SELECT 1 FROM sparks_verify.probe WHERE token = $1", [token]));
                await withClient(target(writer), (c) => c.query("DELETE FROM sparks_verify.probe WHERE token = $1", [token]));
                if (leaked.rowCount !== 0) throw new Error(`a write in ${writer} showed up in ${reader}`);
            }
            return `diverges from ${source} in both directions`;
        }));
    }
    return results;
}
