// Runs commands on a stack's hosts from outside Pulumi (for `sparks verify` and `status`), the way
// the deployment reaches them: the stack's own config read through components/config.ts, the host
// key the last `up` pinned (a stack output) as the only known host, and the login the config names
// (for a lab stack, the lab's own key). A private key stored as a Pulumi secret never touches
// the disk or a command line: it is handed to an ssh-agent of our own on stdin, in a private
// directory, and that agent is stopped by its PID when done.
import { ChildProcess, execFile, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HostSpec, parseFleetConfig } from "../components/config";
import { readFileIfExists } from "../components/files";

/** Runs `command` on host `name`; resolves to its stdout, rejects with its stderr. */
export type HostRunner = (name: string, command: string) => Promise<string>;

export interface HostAccess {
    run: HostRunner;
    /** Stops the agent and removes the private directory. */
    close(): void;
}

/** The stack's config as `pulumi config --json --show-secrets` gives it: full key to value. */
function stackConfig(stack: string): Record<string, unknown> {
    const shown = JSON.parse(execFileSync("pulumi", ["config", "--json", "--show-secrets", "--stack", stack], { encoding: "utf8" })) as
        Record<string, { value?: string; objectValue?: unknown }>;
    return Object.fromEntries(Object.entries(shown).map(([key, v]) => [key, v.objectValue ?? v.value]));
}

/** The lab's login key file, as the lab tool reports it. */
function labKeyFile(projectDir: string): string {
    const hosts = JSON.parse(execFileSync(path.join(projectDir, "lab", "sparks-lab"), ["status", "--json"], { encoding: "utf8" })) as { privateKeyFile: string }[];
    if (hosts.length === 0) throw new Error("the lab has no hosts: run pulumi up");
    return hosts[0].privateKeyFile;
}

/**
 * Host access for `stack`, from its config and the host keys its last `up` pinned (`pinned`, by
 * host name; config's own pin where a host has none); `projectDir` is where key files are relative to.
 */
export async function hostAccess(stack: string, projectDir: string, pinned: Record<string, string | undefined> = {}): Promise<HostAccess> {
    const raw = stackConfig(stack);
    const { fleet, problems } = parseFleetConfig(raw, { projectDir, readFile: readFileIfExists });
    if (fleet === undefined) throw new Error(`verify: the stack config of ${stack} is invalid:\n  ${problems.join("\n  ")}`);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-verify-")); // 0700
    let agent: ChildProcess | undefined;
    const close = () => {
        if (agent?.pid !== undefined) process.kill(agent.pid);
        fs.rmSync(dir, { recursive: true, force: true });
    };
    const identity: string[] = [];
    const env = { ...process.env };
    if (typeof raw["sparks:sshPrivateKey"] === "string") {
        const socket = path.join(dir, "agent.sock");
        agent = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
        try {
            for (let waited = 0; !fs.existsSync(socket); waited += 50) {
                if (waited > 5000) throw new Error("verify: ssh-agent did not start");
                await new Promise((r) => setTimeout(r, 50));
            }
            env.SSH_AUTH_SOCK = socket;
            execFileSync("ssh-add", ["-q", "-"], { input: raw["sparks:sshPrivateKey"] as string, env, stdio: ["pipe", "ignore", "pipe"] });
        } catch (error) {
            close(); // no agent holding the key outlives a failed start
            throw error;
        }
    } else if (fleet.ssh.privateKeyFile !== undefined) {
        identity.push("-i", path.join(projectDir, fleet.ssh.privateKeyFile), "-o", "IdentitiesOnly=yes");
    } else if (fleet.lab !== undefined && fleet.hosts.some((h) => h.lab)) {
        identity.push("-i", labKeyFile(projectDir), "-o", "IdentitiesOnly=yes");
    }
    const hosts = new Map<string, HostSpec>(fleet.hosts.map((h) => [h.name, h]));
    const run: HostRunner = (name, command) => {
        const host = hosts.get(name);
        if (host === undefined) return Promise.reject(new Error(`host ${name} is not in the stack's config`));
        const hostKey = pinned[name] ?? host.hostKey;
        if (hostKey === undefined) return Promise.reject(new Error(`host ${name} has no pinned host key yet: run pulumi up`));
        const knownHosts = path.join(dir, `known_hosts.${name}`);
        fs.writeFileSync(knownHosts, `[${host.address}]:${host.port} ${hostKey}\n${host.address} ${hostKey}\n`);
        const args = [
            ...identity, "-p", String(host.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", `HostKeyAlgorithms=${hostKey.split(" ")[0]}`, "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR",
            `${host.user}@${host.address}`, command,
        ];
        return new Promise((resolve, reject) => {
            execFile("ssh", args, { env, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
                if (error) reject(new Error(`on host ${name}: ${command.split(" ")[0]} failed: ${stderr.trim() || error.message}`));
                else resolve(stdout);
            });
        });
    };
    return { run, close };
}
