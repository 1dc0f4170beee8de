// The team's skills repo as a Pulumi resource: a bare git repo on its host's pool, served by the
// host's `spark-skills` tool (lighttpd on the configured port, pushes over SSH through a hook that
// checks the Agent Skills format), then proven by `spark-skills verify`.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { SkillsRepoSpec, uriHost } from "./config";
import { shellQuote } from "./shell";
import { QUIET_REMOTE, SparksHost } from "./sparksHost";

export interface SkillsRepoArgs {
    host: SparksHost;
    spec: SkillsRepoSpec;
}

/** Where a skills repo is cloned from: anonymous, read-only HTTP. */
export function skillsHttpUrl(address: string, port: number): string {
    return `http://${uriHost(address)}:${port}/skills.git`;
}

/** The `spark-skills init` command line: every setting but the push keys (stdin). */
export function initCommand(spec: SkillsRepoSpec, address: string, sshPort: number): string {
    return ["spark-skills", "init", "--address", address, "--port", String(spec.port), "--ssh-port", String(sshPort),
        "--seed", spec.seed, "--keys-stdin", "--json"].map(shellQuote).join(" ");
}

/** What a skills repo reports: its URLs and main's commit when it was made or last changed. */
export interface SkillsRepoStatus {
    url: string;
    pushUrl: string;
    host: string;
    head: string | null;
    /** The commit verify pushed to the branch sparks-verify; dev containers' verify finds it after their sync. */
    verifyCommit: string;
}

/**
 * The skills repo. Its history is never touched by an up: the seed is its first commit, made once.
 * Changing the port or the push keys updates it in place; removing it stops the service and keeps
 * the repo on the pool unless `keepData: false`.
 *
 * ```ts
 * const skills = new SkillsRepo("skills", { host, spec: { host: "spark-1", port: 8080, pushKeys: [key], seed: "example", keepData: true } });
 * ```
 */
export class SkillsRepo extends pulumi.ComponentResource {
    readonly status: pulumi.Output<SkillsRepoStatus>;
    /** The clone URL, http://HOST:PORT/skills.git. */
    readonly url: string;
    /** Its verify step: depend on it to find the verify commit in place. */
    readonly verified: command.remote.Command;
    readonly verifyCommit: pulumi.Output<string>;

    constructor(name: string, args: SkillsRepoArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:SkillsRepo", name, {}, opts);
        const { host, spec } = args;
        this.url = skillsHttpUrl(host.spec.address, spec.port);
        const init = initCommand(spec, host.spec.address, host.spec.port);
        const served = new command.remote.Command(`${name}-serve`, {
            connection: host.connection,
            create: init,
            // Public keys, one a line: stdin carries them without quoting games.
            stdin: `${spec.pushKeys.join("\n")}\n`,
            delete: ["spark-skills", "destroy", ...(spec.keepData ? ["--keep-data"] : []), "--json"].map(shellQuote).join(" "),
            ...QUIET_REMOTE,
            // A new host key means a new machine, which holds none of it.
            triggers: [host.hostKey],
        }, { parent: this, dependsOn: [host.ready], deleteBeforeReplace: true });
        // Runs again whenever the service changes (the hash of what init was asked).
        const asked = crypto.createHash("sha256").update(JSON.stringify([init, spec.pushKeys])).digest("hex").slice(0, 16);
        this.verified = new command.remote.Command(`${name}-verify`, {
            connection: host.connection,
            create: `spark-skills verify --json # ${asked}`,
            ...QUIET_REMOTE,
            triggers: [host.hostKey],
        }, { parent: this, dependsOn: [served] });
        this.verifyCommit = this.verified.stdout.apply((out) => String(JSON.parse(out).verify_commit));
        this.status = pulumi.all([served.stdout, this.verifyCommit]).apply(([initOut, verifyCommit]): SkillsRepoStatus => {
            const made = JSON.parse(initOut) as { url: string; push_url: string; head: string | null };
            return { url: made.url, pushUrl: made.push_url, host: host.spec.name, head: made.head, verifyCommit };
        });
        this.registerOutputs({ status: this.status });
    }
}
