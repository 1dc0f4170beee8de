// The one rule for the names Sparks resources are given (hosts, databases, forks): they become
// paths, unit names, SQL literals and command arguments, so they are held to NAME_PATTERN.
import * as pulumi from "@pulumi/pulumi";
import { NAME_PATTERN } from "./config";

/** Fails the run if `name` is not a valid Sparks name; `type` says which component was given it. */
export function requireName(type: string, name: string): void {
    if (!NAME_PATTERN.test(name)) {
        throw new pulumi.RunError(`${type}: ${JSON.stringify(name)} is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)`);
    }
}
