// A machine of the local lab (lab/sparks-lab) as a resource of the stack that declares it
// (`sparks:lab.hosts`): `pulumi up` makes it, `pulumi destroy` removes it, and its host key is pinned
// from the machine it made. From there on it is a host like any other (SparksHost).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { requireName } from "./names";
import { shellQuote } from "./shell";

/** The lab tool, relative to the project: local commands run in the program's directory. */
const LAB = "lab/sparks-lab";

/** What `sparks-lab status --json` says of one host (the fields used here). */
interface LabStatus {
    name: string;
    state: "running" | "starting" | "stopped";
    hostKey: string;
    privateKeyFile: string;
    boots: number;
}

/** What the lab says of machine `name` now; undefined when it has none (or there is no lab yet). */
function labStatus(name: string): LabStatus | undefined {
    try {
        const hosts = JSON.parse(execFileSync(LAB, ["status", "--json", name], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })) as LabStatus[];
        return hosts.find((h) => h.name === name);
    } catch {
        return undefined; // no lab on this machine at all (a preview in CI)
    }
}

/**
 * How many times the machine has stopped while the stack was not looking: the boots so far, less
 * the one it runs in. A stopped machine counts one more than when it ran, so the next `up` sees a
 * change and boots it again (the same machine, keys and data); a running one is steady, and so is
 * one about to be made (it boots once), so a second `up` changes nothing.
 */
function stopsSeen(status: LabStatus | undefined): string {
    if (status === undefined) return "0";
    return String(status.state === "stopped" ? status.boots : status.boots - 1);
}

/**
 * A lab machine.
 *
 * ```ts
 * const machine = new LabHost("spark-1");
 * new SparksHost("spark-1", { hostKey: machine.hostKey, privateKey: machine.privateKey, ... });
 * ```
 */
export class LabHost extends pulumi.ComponentResource {
    /** The machine's ed25519 host key, "type base64", as it was made: what SparksHost pins. */
    readonly hostKey: pulumi.Output<string>;
    /** The lab's login key (a secret), read from the lab once the machine exists. */
    readonly privateKey: pulumi.Output<string>;

    constructor(name: string, opts?: pulumi.ComponentResourceOptions) {
        super("sparks:index:LabHost", name, {}, opts);
        requireName("sparks:index:LabHost", name);
        // `up NAME` makes the machine and leaves the others alone; `start NAME` boots it again after
        // it stopped, and refuses if it is gone; `down NAME` removes it (the last one takes the
        // whole lab with it).
        const machine = new command.local.Command(`${name}-machine`, {
            create: `${LAB} up --json ${shellQuote(name)}`,
            update: `${LAB} start ${shellQuote(name)} && ${LAB} status --json ${shellQuote(name)}`,
            delete: `${LAB} down ${shellQuote(name)}`,
            environment: { SPARKS_LAB_STOPS_SEEN: stopsSeen(labStatus(name)) },
            // The lab's progress (stderr) is worth showing; its JSON status (stdout) is for the program.
            logging: "stderr",
        }, { parent: this });
        const status = machine.stdout.apply((out) => {
            // A machine the stack made that is gone now (removed by hand, or this machine restarted)
            // cannot come back: a new one is a new host, with new keys and none of the data.
            if (!pulumi.runtime.isDryRun() && labStatus(name) === undefined) {
                throw new pulumi.RunError(`lab host ${name} is gone from the lab (removed outside the stack, or this machine restarted): ` +
                    "a new machine is a new host, with new keys and none of the old data. Run `pulumi destroy` (it does not need the " +
                    "machine), then `pulumi up` to make new ones");
            }
            return (JSON.parse(out) as LabStatus[])[0];
        });
        this.hostKey = status.apply((s) => s.hostKey);
        this.privateKey = pulumi.secret(status.apply((s) => fs.readFileSync(s.privateKeyFile, "utf8")));
        this.registerOutputs({ hostKey: this.hostKey });
    }
}
