// `sparks status`: what a stack's hosts and databases are doing now, read live over SSH: each
// host's reachability, installed tools against this checkout's, and pool use; each database's
// state, port and source as its tool (spark-pg, spark-redis) lists it, and whether this stack manages it.
import { DATABASE_TOOLS, HostChecks, StackOutputs } from "./verify";

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
    /** The tool that runs it: each tool's names are a namespace of their own. */
    tool: (typeof DATABASE_TOOLS)[number]["tool"];
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
            const lists = DATABASE_TOOLS.map(({ tool }) => `echo; ${tool} list --json`).join("; ");
            const [tools, df, ...listed] = (await access.run(name,
                `cat /opt/sparks/.content-hash 2>/dev/null || echo none; echo; df -h --output=size,used,avail ${recorded.pool} | tail -1; ${lists}`))
                .split("\n\n");
            const [size, used, available] = df.trim().split(/\s+/);
            hosts.push({ host: name, reachable: true, tools: tools.trim(), toolsCurrent: tools.trim() === expectedTools, pool: { size, used, available } });
            DATABASE_TOOLS.forEach(({ tool, output }, i) => {
                for (const db of JSON.parse(listed[i]) as Listed[]) {
                    const managed = outputs[output]?.[db.name]?.host === name;
                    const managedBy = managed ? "stack" : db.owner === null ? "hand" : db.owner.startsWith(access.ownerPrefix) ? "orphan" : "other";
                    databases.push({ name: db.name, tool, host: name, state: db.state, port: db.port, source: db.source, managedBy });
                }
            });
        } catch (error) {
            hosts.push({ host: name, reachable: false, error: (error as Error).message });
        }
    }
    return { hosts, databases };
}
