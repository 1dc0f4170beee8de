// Which stack made a thing, recorded on the hosts (spark-pg's `owner`) so that a create that runs
// again adopts what this stack made, and what it no longer manages can be told apart from what
// people made by hand. The one place that reads the stack's name: as data to record, never to
// decide anything by (dev and prod differ only in their config).
import * as pulumi from "@pulumi/pulumi";

/** `PROJECT/STACK/NAME`: who made a resource named `name` (spark-pg's --owner pattern allows it). */
export function ownerOf(name: string): string {
    return `${pulumi.getProject()}/${pulumi.getStack()}/${name}`;
}
