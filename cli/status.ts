// `sparks status`: what a stack's hosts and databases are doing now, read live over SSH: each
// host's reachability, installed tools against this checkout's, and pool use; each database's
// state, port and source as spark-pg lists it, and whether this stack manages it.
import { HostChecks, StackOutputs } from "./verify";

export interface HostStatus {
    host: string;
    reachable: boolean;
    /** The installed tools' content hash, and whether it is this checkout's. */
    tools?: string;
    toolsCurrent?: boolean;
    pool?: { size: string; used: string; available: string };
    /** Why the host could not be read, when it could not. */
    error?: string;
}

export interface DatabaseStatus {
    name: string;
    host: string;
    state: string;
    port: number | null;
    source: string | null;
    /** "stack" (this stack manages it), "orphan" (this stack made it, no longer manages it),
     *  "other" (another stack's), "hand" (made by hand). */
    managedBy: "stack" | "orphan" | "other" | "hand";
}

interface Listed { name: string; state: string; port: number | null; source: string | null; owner: string | null }

/** Reads every host of the stack's outputs; a host that cannot be reached is a row, not an error. */
export async function stackStatus(outputs: StackOutputs, access: HostChecks): Promise<{ hosts: HostStatus[]; databases: DatabaseStatus[] }> {
    const expectedTools = access.toolsHash;
    const hosts: HostStatus[] = [];
    const databases: DatabaseStatus[] = [];
    for (const [name, recorded] of Object.entries(outputs.hosts ?? {})) {
        try {
            const [tools, df, list] = (await access.run(name,
                `cat /opt/sparks/.content-hash 2>/dev/null || echo none; echo; df -h --output=size,used,avail ${recorded.pool} | tail -1; echo; spark-pg list --json`))
                .split("\n\n");
            const [size, used, available] = df.trim().split(/\s+/);
            hosts.push({ host: name, reachable: true, tools: tools.trim(), toolsCurrent: tools.trim() === expectedTools, pool: { size, used, available } });
            for (const db of JSON.parse(list) as Listed[]) {
                const managed = outputs.postgres?.[db.name]?.host === name;
                const managedBy = managed ? "stack" : db.owner === null ? "hand" : db.owner.startsWith(access.ownerPrefix) ? "orphan" : "other";
                databases.push({ name: db.name, host: name, state: db.state, port: db.port, source: db.source, managedBy });
            }
        } catch (error) {
            hosts.push({ host: name, reachable: false, error: (error as Error).message });
        }
    }
    return { hosts, databases };
}
