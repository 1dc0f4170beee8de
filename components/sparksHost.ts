// A server turned into a Sparks host over SSH: packages, the btrfs pool, /dev/kvm, the host tools,
// and a verify step that proves all of it works. Every step is idempotent and safe to re-run.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { HostSpec, ListenOn, PgSettings, PortRange, RedisSettings, SshKey, SshSettings } from "./config";
import { hostConnection } from "./hostConnection";
import { requireName } from "./names";
import { setupScript } from "./shell";

/** This repo's host-side tools, installed on every host at /opt/sparks. */
export const HOST_TOOLS_DIR = path.join(__dirname, "..", "host");
/** Their version: one hash per run, shared by every host. */
const HOST_TOOLS_HASH = contentHash(HOST_TOOLS_DIR);

/**
 * For every remote command: no previous output in its environment. The scripts never read it, and
 * sshd refuses it unless configured to AcceptEnv it, which makes every update print a warning.
 */
export const QUIET_REMOTE = { addPreviousOutputInEnv: false };

/** Where tools are staged on a host before tools.sh installs them (root-only; staging.sh). */
export const STAGING_ROOT = "/var/lib/sparks/staging";

/** What setup installs. systemd-container runs the dev containers; python3 answers the KVM check
 *  and computes SCRAM verifiers; openssl makes the host's Postgres TLS certificate; lighttpd serves
 *  the skills repo (Debian's own lighttpd.service stays masked), python3-yaml reads skills' front
 *  matter, curl checks HTTP services, redis-server (with redis-cli) runs spark-redis's databases. */
const PACKAGES = [
    "btrfs-progs", "postgresql-15", "postgresql-client-15", "git", "systemd-container", "mmdebstrap", "python3", "openssl",
    "lighttpd", "python3-yaml", "curl", "redis-server",
];

export interface SparksHostArgs {
    /** The host as validated from `sparks:hosts`. */
    host: HostSpec;
    /** The host key it must present: the pinned one from config, or a lab machine's (LabHost). */
    hostKey: pulumi.Input<string>;
    /** How to log in (`sparks:ssh`). */
    ssh: SshSettings;
    /** The SSH private key, a secret; undefined when the ssh agent is used. */
    privateKey: SshKey;
    /** spark-pg's fleet settings (`sparks:pg`), written to the host's /etc/sparks/spark-pg.conf. */
    pg: PgSettings;
    /** spark-redis's fleet settings (`sparks:redis`), written to the host's /etc/sparks/spark-redis.conf. */
    redis: RedisSettings;
    /** Build the base image dev containers start from (a host with containers needs it). */
    devImage?: boolean;
}

/** What the verify step found on the host. */
export interface HostVerification {
    pool: string;
    tools: string;
    sparkPg: string;
    kvmApiVersion: number;
    /** The host's Postgres TLS certificate: every instance and fork serves it (verify-full against it). */
    pgCertificate: { pem: string; sha256: string; names: string[] };
    /** The host key the deployment pinned ("type base64"): `sparks verify` connects with it too. */
    hostKey: string;
}

/**
 * A Sparks host.
 *
 * ```ts
 * const host = new SparksHost("spark-1", { host, hostKey, ssh, privateKey, pg, redis });
 * new PgInstance("app", { host, ... }); // runs after host.ready
 * ```
 */
export class SparksHost extends pulumi.ComponentResource {
    /** The connection every command on this host uses. */
    readonly connection: command.types.input.remote.ConnectionArgs;
    /** Depend on this to run after setup and verification. */
    readonly ready: pulumi.Resource;
    /** The verify step's findings, exported as a stack output. */
    readonly verification: pulumi.Output<HostVerification>;
    readonly spec: HostSpec;
    /** The host key the deployment pins: a new one means a new machine, set up from scratch. */
    readonly hostKey: pulumi.Input<string>;
    /** The base image's ID, when the host has one (devImage). */
    readonly devImage?: pulumi.Output<string>;

    constructor(name: string, args: SparksHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:SparksHost", name, {}, opts);
        requireName("sparks:index:SparksHost", name);
        const { host } = args;
        const toolsHash = HOST_TOOLS_HASH;
        this.spec = host;
        this.hostKey = args.hostKey;
        const connection = hostConnection(host, args.hostKey, args.ssh, args.privateKey);
        const poolDir = `${host.pool.mountPoint}/pg`;
        const hostVars = { HOST: host.name };

        // A new host key means a new machine: set it up from scratch (README: rebuilt servers).
        const identity = [args.hostKey];
        const step = (stepName: string, vars: Record<string, string | number>, dependsOn: pulumi.Resource[]) =>
            new command.remote.Command(`${name}-${stepName}`, {
                connection,
                create: setupScript(stepName, "create", { ...hostVars, ...vars }),
                delete: setupScript(stepName, "delete", { ...hostVars, ...vars }),
                triggers: identity,
                ...QUIET_REMOTE,
            }, { parent: this, dependsOn, deleteBeforeReplace: true });

        const packagesVars = { PACKAGES: PACKAGES.join(" ") };
        const poolVars = { DEVICE: host.pool.device, MOUNT_POINT: host.pool.mountPoint, WIPE_ON_DELETE: String(host.pool.wipeOnDelete) };
        const packages = step("packages", packagesVars, []);
        const pool = step("pool", poolVars, [packages]);
        const kvm = step("kvm", {}, [packages]);
        // Staged in a root-only 0700 directory, never a shared one such as /var/tmp. The path
        // carries the content hash: a changed tool is a fresh copy, never a merge. The trailing
        // "/" copies host/'s contents into the path rather than a host/ folder inside it.
        const stagingRoot = step("staging", { STAGING_ROOT: STAGING_ROOT }, [packages]);
        const staging = `${STAGING_ROOT}/tools-${toolsHash}`;
        const copy = new command.remote.CopyToRemote(`${name}-tools-copy`, {
            connection,
            source: new pulumi.asset.FileArchive(`${HOST_TOOLS_DIR}/`),
            remotePath: staging,
            triggers: identity,
        }, { parent: this, dependsOn: [stagingRoot] });
        const redisDir = `${host.pool.mountPoint}/redis`;
        const toolsVars = {
            STAGING: staging, TOOLS_HASH: toolsHash, POOL_DIR: poolDir, REDIS_DIR: redisDir,
            PG_CONF: databaseToolConf("pg", host, args.pg, poolDir, [`SPARK_PG_ALLOW="${args.pg.allow.join(" ")}"`]),
            REDIS_CONF: databaseToolConf("redis", host, args.redis, redisDir, [`SPARK_REDIS_APPENDFSYNC=${args.redis.appendfsync}`]),
            DEV_DIR: `${host.pool.mountPoint}/dev`, SKILLS_DIR: `${host.pool.mountPoint}/skills`,
        };
        const tools = step("tools", toolsVars, [pool, copy]);
        // SETUP, the hash of every step's settings, is in verify's command so that any up that
        // changes the host runs the checks again (an update, as a changed command is).
        const setup = crypto.createHash("sha256").update(JSON.stringify([packagesVars, poolVars, toolsVars])).digest("hex").slice(0, 16);
        const verify = new command.remote.Command(`${name}-verify`, {
            connection,
            create: setupScript("verify", "create", { ...hostVars, MOUNT_POINT: host.pool.mountPoint, TOOLS_HASH: toolsHash, SETUP: setup }),
            triggers: identity,
            ...QUIET_REMOTE,
        }, { parent: this, dependsOn: [pool, kvm, tools] });

        this.connection = connection;
        this.ready = verify;
        if (args.devImage) {
            // Re-run with every tools change: a new image recipe gives a new ID, and the containers
            // that start from it move to it (keeping their homes). Unchanged, it reports the same ID.
            // Its delete removes images no container uses, once the containers are gone.
            const image = new command.remote.Command(`${name}-dev-image`, {
                connection,
                create: `spark-dev image --json # tools ${toolsHash}`,
                delete: "spark-dev image --prune --json",
                triggers: identity,
                ...QUIET_REMOTE,
            }, { parent: this, dependsOn: [verify], deleteBeforeReplace: true });
            this.devImage = image.stdout.apply((out) => String(JSON.parse(out).image));
        }
        this.verification = pulumi.all([verify.stdout, args.hostKey]).apply(([out, hostKey]) => ({ ...JSON.parse(out), hostKey }) as HostVerification);
        this.registerOutputs({ verification: this.verification });
    }
}

/**
 * A database tool's settings on this host (spark-pg's, spark-redis's): KEY=value lines, read without
 * `source` by the tool; `more` are the tool's own lines after the common ones.
 */
function databaseToolConf(tool: "pg" | "redis", host: HostSpec, settings: { ports: PortRange; listen: ListenOn[] }, root: string, more: string[] = []): string {
    const prefix = `SPARK_${tool.toUpperCase()}`;
    const listen = settings.listen.map((where) => (where === "loopback" ? "127.0.0.1" : host.address));
    return [
        `# Written by Sparks (pulumi) from the stack config sparks:${tool}. Local edits are overwritten.`,
        `${prefix}_ROOT=${root}`,
        `${prefix}_PORTS=${settings.ports.first}-${settings.ports.last}`,
        `${prefix}_LISTEN="${listen.join(" ")}"`,
        ...more,
    ].join("\n");
}

/** A hash of a directory's files, names and exec bits: the installed tools' version. */
export function contentHash(dir: string): string {
    const hash = crypto.createHash("sha256");
    const walk = (relative: string): void => {
        for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
            const file = path.join(relative, entry.name);
            if (entry.isDirectory()) walk(file);
            else {
                const executable = (fs.statSync(path.join(dir, file)).mode & 0o111) !== 0;
                hash.update(`${file}\0${executable}\0`).update(fs.readFileSync(path.join(dir, file))).update("\0");
            }
        }
    };
    walk("");
    return hash.digest("hex").slice(0, 16);
}
