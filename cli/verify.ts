// Summary: prove a deployed stack works, from the outside, with each database's own credentials
// Usage: npx ts-node scripts/verify.ts STACK
//
// On each host (over SSH, as the stack's config says) it also lists the databases: one the stack
// made (spark-pg records each database's owner, PROJECT/STACK/NAME) but no longer manages is an
// orphan, and a failure; one made by hand (no owner) is listed as unmanaged.
//
// Hosts verify themselves during `pulumi up` (pool, tools, KVM), in the run that changed them; this
// reads what they reported and then connects to every Postgres instance and fork over the network with node-postgres: each
// answers with its own password over TLS verified against its host's certificate (verify-full),
// a fork holds its source's data as of the fork, and a write on either side stays on that side.
// URIs hold passwords: they are kept in memory, never printed.
import { execFileSync } from "child_process";
import { randomUUID } from "crypto";
import * as fs from "fs";
import * as tls from "tls";
import { Client } from "pg";
import { hostAccess, HostRunner } from "./hostAccess";

export interface StackOutputs {
    hosts?: Record<string, { kvmApiVersion: number; tools: string; pool: string; pgCertificate?: { pem: string } }>;
    postgres?: Record<string, { port: number; uri: string; source?: string; host?: string }>;
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

async function withClient<T>(name: string, target: Target, use: (client: Client) => Promise<T>): Promise<T> {
    const client = clientFor(target);
    try {
        await client.connect();
    } catch (error) {
        throw new Error(`verify: postgres ${name}: cannot connect with its own credentials: ${(error as Error).message}`);
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
}

/** One host's databases as spark-pg lists them: orphans of this stack fail, hand-made ones are named. */
async function checkOwnership(host: string, outputs: StackOutputs, checks: HostChecks): Promise<string> {
    const listed = JSON.parse(await checks.run(host, "spark-pg list --json")) as { name: string; owner: string | null }[];
    const managed = new Set(Object.entries(outputs.postgres ?? {}).filter(([, db]) => db.host === host).map(([name]) => name));
    const orphans = listed.filter((db) => db.owner?.startsWith(checks.ownerPrefix) && !managed.has(db.name));
    if (orphans.length > 0) {
        throw new Error(`verify: host ${host}: orphan database(s) ${orphans.map((db) => `${db.name} (owner ${db.owner})`).join(", ")}: ` +
            "made by this stack, no longer managed by it; destroy them (spark-pg destroy NAME) or put them back in the config");
    }
    const unmanaged = listed.filter((db) => db.owner === null).map((db) => db.name);
    return `host ${host}: no orphan databases; made by hand (unmanaged): ${unmanaged.length > 0 ? unmanaged.join(", ") : "none"}`;
}

/**
 * Checks everything the stack reports, and with `hostChecks` the hosts' databases too; returns one
 * line per check passed, throws on the first failure.
 */
export async function verifyStack(outputs: StackOutputs, hostChecks?: HostChecks): Promise<string[]> {
    const passed: string[] = [];
    for (const [name, host] of Object.entries(outputs.hosts ?? {})) {
        if (host.kvmApiVersion !== 12) throw new Error(`verify: host ${name}: KVM API version ${host.kvmApiVersion}, expected 12`);
        // Checked on the host by its verify step, in the `up` that last changed the host.
        passed.push(`host ${name} (as checked on the host by pulumi up): pool ${host.pool}, tools ${host.tools}, KVM API ${host.kvmApiVersion}`);
        if (hostChecks !== undefined) passed.push(await checkOwnership(name, outputs, hostChecks));
    }
    const databases = outputs.postgres ?? {};
    const target = (name: string): Target => {
        const db = databases[name];
        const certificate = db.host === undefined ? undefined : outputs.hosts?.[db.host]?.pgCertificate?.pem;
        if (certificate === undefined) throw new Error(`verify: postgres ${name}: no TLS certificate for its host ${db.host ?? "(unknown)"} in the stack outputs; run pulumi up`);
        return { uri: db.uri, certificate };
    };
    const chainOf = (name: string): string[] => {
        const source = databases[name].source;
        return source === undefined ? [name] : [...chainOf(source), name];
    };
    for (const [name, db] of Object.entries(databases)) {
        const lineage = await withClient(name, target(name), lineageOf);
        const chain = chainOf(name);
        if (JSON.stringify(lineage) !== JSON.stringify([...chain].sort())) {
            throw new Error(`verify: postgres ${name}: holds the data of ${JSON.stringify(lineage)}, expected that of ${JSON.stringify(chain)}`);
        }
        passed.push(`postgres ${name}: answers on port ${db.port} with its own password, over TLS verified against ${db.host}'s certificate; holds the data of ${chain.join(" <- ")}`);
    }
    for (const [name, db] of Object.entries(databases)) {
        if (db.source === undefined) continue;
        const source = databases[db.source];
        const token = `verify-${randomUUID()}`;
        for (const [writer, reader] of [[name, db.source], [db.source, name]]) {
            await withClient(writer, target(writer), (c) => c.query("INSERT INTO sparks_verify.probe VALUES ($1)", [token]));
            const leaked = await withClient(reader, target(reader), (c) => c.query("SELECT 1 FROM sparks_verify.probe WHERE token = $1", [token]));
            await withClient(writer, target(writer), (c) => c.query("DELETE FROM sparks_verify.probe WHERE token = $1", [token]));
            if (leaked.rowCount !== 0) throw new Error(`verify: postgres ${writer}: a write there showed up in ${reader}`);
        }
        passed.push(`postgres ${name}: diverges from ${db.source} (port ${source.port}) in both directions`);
    }
    return passed;
}

if (require.main === module) {
    const stack = process.argv[2];
    if (!stack || !/^[a-z][a-z0-9-]*$/.test(stack)) {
        console.error("usage: npx ts-node scripts/verify.ts STACK");
        process.exit(2);
    }
    const outputs = JSON.parse(execFileSync("pulumi", ["stack", "output", "--json", "--show-secrets", "--stack", stack], { encoding: "utf8" }));
    const project = /^name:\s*(\S+)/m.exec(fs.readFileSync("Pulumi.yaml", "utf8"))![1];
    (async () => {
        const access = await hostAccess(stack, process.cwd());
        try {
            return await verifyStack(outputs, { run: access.run, ownerPrefix: `${project}/${stack}/` });
        } finally {
            access.close();
        }
    })().then(
        (lines) => { for (const line of lines) console.log(`verify: ok: ${line}`); },
        (error) => { console.error((error as Error).message); process.exit(1); },
    );
}
