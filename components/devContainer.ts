// Long-lived dev containers as Pulumi resources: each is a systemd-nspawn machine on its host,
// driven by the host's `spark-dev` tool over SSH, started from the host's base image (a resource
// of the host: SparksHost.devImage).
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { DevContainerSpec } from "./config";
import { ownerOf } from "./identity";
import { shellQuote } from "./shell";
import { SkillsRepo } from "./skillsRepo";
import { QUIET_REMOTE, SparksHost } from "./sparksHost";

export interface DevContainerArgs {
    /** The host it runs on; it must have been given `devImage: true`. */
    host: SparksHost;
    spec: DevContainerSpec;
    /** The stack's skills repo, if any: ~/skills is kept a clone of it. */
    skills?: SkillsRepo;
}

/** The `spark-dev create` command line for a container: every setting but the keys (stdin). */
export function createCommand(spec: DevContainerSpec, image: string, skillsUrl?: string): string {
    const args = [
        "spark-dev", "create", spec.name, "--address", spec.address, "--owner", ownerOf(spec.name), "--image", image, "--keys-stdin",
        "--packages", spec.packages.join(" "),
        ...(spec.cpus === undefined ? [] : ["--cpus", String(spec.cpus)]),
        ...(spec.memoryMb === undefined ? [] : ["--memory-mb", String(spec.memoryMb)]),
        "--idle-minutes", String(spec.idleStopMinutes),
        ...(skillsUrl === undefined ? [] : ["--skills-url", skillsUrl]),
        "--json",
    ];
    return args.map(shellQuote).join(" ");
}

/**
 * A dev container: its own address, SSH for its owner's keys as user `dev`, `/dev/kvm`, a home
 * that outlives it (unless `keepHome: false`), and with a skills repo, a clone of it in ~/skills
 * kept current. Changing packages, limits, keys, idle stop or the skills repo updates it in place; a new base image or address gives it a fresh root and keeps its home.
 *
 * ```ts
 * const ada = new DevContainer("ada", { host, spec: { name: "ada", host: "spark-1", address: "10.0.0.50", ownerKeys: [key], ... } });
 * ```
 */
export class DevContainer extends pulumi.ComponentResource {
    /** What `spark-dev create --json` reported (state, address, image, limits, packages, skills URL), its host and its verify. */
    readonly status: pulumi.Output<Record<string, unknown>>;
    readonly created: command.remote.Command;
    /** Its verify step; depend on it to run after the container is proven to work. */
    readonly verified: command.remote.Command;
    /** Its spark-dev name on the host. */
    readonly containerName: string;

    constructor(name: string, args: DevContainerArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:DevContainer", name, {}, opts);
        const { host, spec, skills } = args;
        this.containerName = spec.name;
        if (host.devImage === undefined) throw new Error(`DevContainer ${name}: host ${host.spec.name} has no base image (devImage: true)`);
        this.created = new command.remote.Command(`${name}-dev`, {
            connection: host.connection,
            create: host.devImage.apply((image) => createCommand(spec, image, skills?.url)),
            // The keys are public, but a list of lines: stdin carries them without quoting games.
            stdin: `${spec.ownerKeys.join("\n")}\n`,
            delete: ["spark-dev", "destroy", spec.name, ...(spec.keepHome ? ["--keep-home"] : [])].map(shellQuote).join(" "),
            ...QUIET_REMOTE,
            // A new host key means a new machine, which holds none of them.
            triggers: [host.hostKey],
        }, { parent: this, dependsOn: [host.ready], deleteBeforeReplace: true });
        // Its verify step: SSH in as dev from the host, a KVM guest booted as dev, the same home;
        // when the container is new (no one uses it yet), also that the home outlives a stop and
        // start; with a skills repo, ~/skills in step with it after a sync. It runs again, without
        // the restart, whenever the container changes (the hash of what create was asked) and
        // after each verify of the skills repo (whose pushed commit the sync must bring).
        const asked = host.devImage.apply((image) =>
            crypto.createHash("sha256").update(JSON.stringify([createCommand(spec, image, skills?.url), spec.ownerKeys])).digest("hex").slice(0, 16));
        const skillsMark = skills === undefined ? "" : pulumi.interpolate` skills ${skills.verifyCommit}`;
        this.verified = new command.remote.Command(`${name}-dev-verify`, {
            connection: host.connection,
            create: pulumi.interpolate`${["spark-dev", "verify", spec.name, "--restart", "--json"].map(shellQuote).join(" ")} # ${asked}${skillsMark}`,
            update: pulumi.interpolate`${["spark-dev", "verify", spec.name, "--json"].map(shellQuote).join(" ")} # ${asked}${skillsMark}`,
            ...QUIET_REMOTE,
            triggers: [host.hostKey],
        }, { parent: this, dependsOn: [this.created, ...(skills === undefined ? [] : [skills.verified])] });
        this.status = pulumi.all([this.created.stdout, this.verified.stdout]).apply(([created, verified]) =>
            ({ ...JSON.parse(created), host: host.spec.name, verified: JSON.parse(verified) }) as Record<string, unknown>);
        this.registerOutputs({ status: this.status });
    }
}
