// spark-pg databases as Pulumi resources: a PgInstance is a fresh Postgres on its own btrfs
// subvolume, a PgSnapshot a named read-only snapshot of one (a fixture), a PgFork a writable
// snapshot of an instance, of another fork or of a PgSnapshot. All are driven by the host's
// `spark-pg` tool over SSH; each database has its own random password (sparkDatabase.ts).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { uriHost } from "./config";
import { ownerOf } from "./identity";
import { requireName } from "./names";
import { QUIET_REMOTE, SparksHost } from "./sparksHost";
import { shellQuote } from "./shell";
import { DatabaseTool, SparkDatabase, SparkDatabaseArgs } from "./sparkDatabase";

export type PgDatabaseArgs = SparkDatabaseArgs;

export interface PgForkArgs extends PgDatabaseArgs {
    /** The instance or fork it snapshots. */
    source: PgDatabase;
    /** One of the source's named snapshots to fork instead of its current state (a fixture). */
    snapshot?: PgSnapshot;
}

/**
 * Adds this database's name to `sparks_verify.lineage`, owned by its `spark` role. A fork inherits
 * its source's rows, so verify can prove it saw the source's data as of the fork, and no later.
 */
function recordLineage(name: string): string {
    const sql = [
        // IF NOT EXISTS says NOTICE when it skips; only warnings and errors are worth showing.
        "SET client_min_messages = warning;",
        "SET ROLE spark;",
        "CREATE SCHEMA IF NOT EXISTS sparks_verify;",
        "CREATE TABLE IF NOT EXISTS sparks_verify.lineage (name text PRIMARY KEY, recorded timestamptz NOT NULL DEFAULT now());",
        "CREATE TABLE IF NOT EXISTS sparks_verify.probe (token text PRIMARY KEY);",
        `INSERT INTO sparks_verify.lineage (name) VALUES ('${name}') ON CONFLICT DO NOTHING;`,
    ].join(" ");
    // NAME_PATTERN keeps `name` free of quotes; psql stops at the first error.
    const script = `\\set ON_ERROR_STOP on\n${sql}`;
    return `printf '%s\\n' ${shellQuote(script)} | spark-pg connect ${shellQuote(name)} --psql >/dev/null`;
}

const SPARK_PG: DatabaseTool = {
    name: "pg",
    recordLineage,
    uri: (password, address, port) => pulumi.interpolate`postgresql://spark:${password}@${uriHost(address)}:${port}/spark?sslmode=verify-full`,
};

/**
 * What every spark-pg database exposes. Its `uri` is
 * `postgresql://spark:PASSWORD@ADDRESS:PORT/spark?sslmode=verify-full`: verify the server against
 * its host's `pgCertificate` (the `hosts` output) as sslrootcert.
 */
export abstract class PgDatabase extends SparkDatabase {
    /** The source's snapshot it was forked from, if any (a fixture). */
    readonly sourceSnapshot?: string;

    protected constructor(type: string, name: string, verb: string, args: PgDatabaseArgs & { source?: PgDatabase; snapshot?: PgSnapshot }, protect: boolean,
        opts?: pulumi.ComponentResourceOptions) {
        super(type, name, SPARK_PG, verb, args, protect, opts);
        this.sourceSnapshot = args.snapshot?.snapshot;
    }
}

/**
 * A Postgres instance on its own subvolume of the host's pool, run as `spark-pg@NAME`.
 *
 * ```ts
 * const app = new PgInstance("app", { host });
 * export const appUri = app.uri; // secret
 * ```
 */
export class PgInstance extends PgDatabase {
    constructor(name: string, args: PgDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:PgInstance", name, `new ${shellQuote(name)}`, args, args.protect ?? true, opts);
    }
}

/**
 * A writable copy of an instance (or of a fork) as of now: a btrfs snapshot started as its own
 * postmaster on its own port, with its own password.
 *
 * ```ts
 * const review = new PgFork("app-review", { host, source: app });
 * ```
 */
export class PgFork extends PgDatabase {
    constructor(name: string, args: PgForkArgs, opts?: pulumi.ComponentResourceOptions) {
        if (args.snapshot !== undefined && args.snapshot.instance !== args.source.databaseName) {
            throw new Error(`PgFork ${name}: snapshot ${args.snapshot.spec} is not one of ${args.source.databaseName}'s`);
        }
        const source = args.snapshot?.spec ?? args.source.databaseName;
        super("sparks:index:PgFork", name, `fork ${shellQuote(source)} ${shellQuote(name)}`, args, args.protect ?? false,
            { ...opts, dependsOn: [args.snapshot?.created ?? args.source.created] });
    }
}

export interface PgSnapshotArgs {
    /** The instance's host. */
    host: SparksHost;
    /** The instance it is a snapshot of. */
    instance: PgInstance;
    /** Its name among the instance's snapshots (spark-pg's NAME rules). */
    snapshot: string;
}

/**
 * A named read-only snapshot of an instance, taken once when it is made and never again (a test
 * fixture, or a point to roll back to): forks name it as their source, and `spark-pg reset` takes
 * them back to it. Removing it drops it, unless forks made from it by hand still exist (then `up`
 * fails naming them, and nothing is lost).
 *
 * ```ts
 * const fixture = new PgSnapshot("app-fixture", { host, instance: app, snapshot: "fixture" });
 * const t1 = new PgFork("t1", { host, source: app, snapshot: fixture });
 * ```
 */
export class PgSnapshot extends pulumi.ComponentResource {
    /** The instance's spark-pg name. */
    readonly instance: string;
    /** Its name among the instance's snapshots. */
    readonly snapshot: string;
    /** INSTANCE@SNAPSHOT, as `spark-pg fork` takes it. */
    readonly spec: string;
    /** The resource to depend on to run after it exists. */
    readonly created: command.remote.Command;
    /** When it was taken (UTC ISO-8601). */
    readonly takenAt: pulumi.Output<string>;

    constructor(name: string, args: PgSnapshotArgs, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:PgSnapshot", name, {}, opts);
        requireName("PgSnapshot", args.snapshot);
        this.instance = args.instance.databaseName;
        this.snapshot = args.snapshot;
        this.spec = `${this.instance}@${args.snapshot}`;
        const target = `${shellQuote(this.instance)} ${shellQuote(args.snapshot)}`;
        this.created = new command.remote.Command(`${name}-snapshot`, {
            connection: args.host.connection,
            // The owner lets an interrupted up adopt the snapshot it took instead of refusing it.
            create: `spark-pg snapshot ${target} --owner ${shellQuote(ownerOf(name))} --json`,
            delete: `spark-pg drop-snapshot ${target} --if-exists`,
            ...QUIET_REMOTE,
            triggers: [args.host.hostKey],
        }, { parent: this, dependsOn: [args.instance.created], deleteBeforeReplace: true });
        this.takenAt = this.created.stdout.apply((out) => String(JSON.parse(out).created));
        this.registerOutputs({ takenAt: this.takenAt });
    }
}
