// What spark-pg and spark-redis databases share as Pulumi resources: the host's tool makes each one
// over SSH (`new` or `fork`) with its own random password and this stack as its owner, records it
// for verify's lineage check, and `destroy` removes it. Each tool says its URI and how it records.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as random from "@pulumi/random";
import { ownerOf } from "./identity";
import { requireName } from "./names";
import { QUIET_REMOTE, SparksHost } from "./sparksHost";
import { shellQuote } from "./shell";

export interface SparkDatabaseArgs {
    /** The host it lives on: a fork lives on its source's host. */
    host: SparksHost;
    /**
     * Refuse to delete it: removing it from config then fails `pulumi up` instead of dropping data.
     * @default true for instances, false for forks
     */
    protect?: boolean;
}

/** What differs between the host tools that run databases. */
export interface DatabaseTool {
    /** `spark-NAME` is the tool on the host; `DATABASE-NAME` names each database's command. */
    name: "pg" | "redis";
    /** A shell command, run once the database is made, that records its name where verify reads its lineage. */
    recordLineage(database: string): string;
    /** The URI clients connect with, its password in it. */
    uri(password: pulumi.Output<string>, address: string, port: pulumi.Output<number>): pulumi.Output<string>;
}

/** A database one of the host's tools runs. */
export abstract class SparkDatabase extends pulumi.ComponentResource {
    /** The port its tool gave it (kept across restarts). */
    readonly port: pulumi.Output<number>;
    /** Its connection URI, with its password: a secret. */
    readonly uri: pulumi.Output<string>;
    /** The resource to depend on to run after it exists. */
    readonly created: command.remote.Command;
    /** Its name on the host, among its tool's databases. */
    readonly databaseName: string;
    /** What it was forked from, if it is a fork. */
    readonly source?: string;
    /** The host it runs on. */
    readonly hostName: string;

    protected constructor(type: string, name: string, tool: DatabaseTool, verb: string, args: SparkDatabaseArgs & { source?: SparkDatabase },
        protect: boolean, opts?: pulumi.ComponentResourceOptions) {
        super(type, name, {}, opts);
        // A public API: the name reaches queries, paths and shell commands, whoever calls this.
        requireName(type, name);
        this.databaseName = name;
        const password = new random.RandomPassword(`${name}-password`, { length: 32, special: false }, { parent: this });
        this.created = new command.remote.Command(`${name}-${tool.name}`, {
            connection: args.host.connection,
            // The password goes in on stdin: never on a command line, in `ps` or in a log. The
            // owner names this stack's resource: running create again (after an interrupted `up`,
            // or when the connection changed, e.g. a new deploy key) adopts what it made, while a
            // database of the same name made by anyone else is still refused.
            create: `spark-${tool.name} ${verb} --owner ${shellQuote(ownerOf(name))} --password-stdin --json && ${tool.recordLineage(name)}`,
            stdin: password.result,
            delete: `spark-${tool.name} destroy --if-exists ${shellQuote(name)}`,
            ...QUIET_REMOTE,
            // A new host key means a new machine, which holds none of them (README: rebuilt servers).
            triggers: [args.host.hostKey],
        }, { parent: this, dependsOn: [args.host.ready], protect, deleteBeforeReplace: true });
        this.port = this.created.stdout.apply((out) => Number(JSON.parse(out).port));
        this.source = args.source?.databaseName;
        this.hostName = args.host.spec.name;
        this.uri = pulumi.secret(tool.uri(password.result, args.host.spec.address, this.port));
        this.registerOutputs({ port: this.port, uri: this.uri });
    }
}
