// The whole fleet from validated config: hosts first, then their databases, forks after sources.
import * as pulumi from "@pulumi/pulumi";
import { LoadedFleet } from "./config";
import { DevContainer } from "./devContainer";
import { LabHost } from "./labHost";
import { SkillsRepo } from "./skillsRepo";
import { SparksHost } from "./sparksHost";
import { PgDatabase, PgFork, PgInstance, PgSnapshot } from "./sparkPg";

export function deployFleet(fleet: LoadedFleet) {
    // A lab host is a machine the stack makes, pinned as made; any other host is pinned in config.
    // What lives on a lab machine goes with it: deleting the machine skips their deletes (nothing
    // to clean on a machine that is about to be removed, and no SSH to one that is already gone).
    const machines = new Map(fleet.hosts.filter((host) => host.lab).map((host) => [host.name, new LabHost(host.name)]));
    const onHost = (name: string): pulumi.ComponentResourceOptions => ({ deletedWith: machines.get(name) });
    const hosts = new Map(fleet.hosts.map((host) => {
        const machine = machines.get(host.name);
        return [host.name, new SparksHost(host.name, {
            host,
            hostKey: machine?.hostKey ?? host.hostKey!,
            ssh: fleet.ssh,
            privateKey: machine?.privateKey ?? fleet.sshPrivateKey,
            pg: fleet.pg,
            devImage: fleet.devContainers.some((c) => c.host === host.name),
        }, onHost(host.name))];
    }));

    const databases = new Map<string, PgDatabase>();
    const snapshots = new Map<string, PgSnapshot>();
    for (const instance of fleet.postgres) {
        const host = hosts.get(instance.host)!;
        const database = new PgInstance(instance.name, { host, protect: fleet.pg.protectInstances }, onHost(instance.host));
        databases.set(instance.name, database);
        for (const snapshot of instance.snapshots) {
            snapshots.set(`${instance.name}@${snapshot}`,
                new PgSnapshot(`${instance.name}-snapshot-${snapshot}`, { host, instance: database, snapshot }, onHost(instance.host)));
        }
    }
    // Config order need not be dependency order: keep placing forks whose source exists. A round
    // that places nothing means a source that never appears (config refuses those; callers of
    // this function need not have used it): stop there instead of spinning.
    let pending = fleet.forks;
    while (pending.length > 0) {
        const ready = pending.filter((fork) => databases.has(fork.source));
        if (ready.length === 0) {
            throw new pulumi.RunError(`forks without a source: ${pending.map((f) => `${f.name} (source ${f.source})`).join(", ")}`);
        }
        for (const fork of ready) {
            const snapshot = fork.sourceSnapshot === undefined ? undefined : snapshots.get(`${fork.source}@${fork.sourceSnapshot}`);
            databases.set(fork.name, new PgFork(fork.name, { host: hosts.get(fork.host)!, source: databases.get(fork.source)!, snapshot }, onHost(fork.host)));
        }
        pending = pending.filter((fork) => !databases.has(fork.name));
    }

    const skillsSpec = fleet.skillsRepo;
    const skills = skillsSpec === undefined ? undefined
        : new SkillsRepo("skills", { host: hosts.get(skillsSpec.host)!, spec: skillsSpec }, onHost(skillsSpec.host));
    const devContainers = fleet.devContainers.map((spec) =>
        new DevContainer(spec.name, { host: hosts.get(spec.host)!, spec, skills }, onHost(spec.host)));

    return {
        devContainers: Object.fromEntries(devContainers.map((c) => [c.containerName, c.status])),
        skillsRepo: skills?.status,
        hosts: Object.fromEntries([...hosts].map(([name, host]) => [name, host.verification])),
        postgres: Object.fromEntries([...databases].map(([name, db]) => [name, { port: db.port, uri: db.uri, source: db.source, sourceSnapshot: db.sourceSnapshot, host: db.hostName }])),
    };
}
