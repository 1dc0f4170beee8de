// Which stack this is, as data: recorded on the hosts (spark-pg's `owner`) so that a create that
// runs again adopts what this stack made; and whether its secrets are under the public lab
// passphrase. The one place that reads the stack's name, and never to decide how to deploy (dev
// and prod differ only in their config).
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { readFileIfExists } from "./files";

/** The published passphrase toolchain/env.sh sets when none is given: anyone can decrypt under it. */
export const LAB_PASSPHRASE = "sparks-dev-lab";

/** `PROJECT/STACK/NAME`: who made a resource named `name` (spark-pg's --owner pattern allows it). */
export function ownerOf(name: string): string {
    return `${pulumi.getProject()}/${pulumi.getStack()}/${name}`;
}

/**
 * Whether this stack's secrets are encrypted under LAB_PASSPHRASE: it uses the passphrase secrets
 * provider (its stack file has an `encryptionsalt`) and the passphrase the engine was given (the
 * program sees the engine's environment) is the lab's.
 */
export function secretsUnderLabPassphrase(): boolean {
    const file = process.env.PULUMI_CONFIG_PASSPHRASE_FILE;
    const passphrase = process.env.PULUMI_CONFIG_PASSPHRASE ?? (file ? readFileIfExists(file)?.replace(/\r?\n$/, "") : undefined);
    if (passphrase !== LAB_PASSPHRASE) return false;
    const stackFile = readFileIfExists(path.join(process.cwd(), `Pulumi.${pulumi.getStack()}.yaml`)) ?? "";
    return /^encryptionsalt:/m.test(stackFile);
}
