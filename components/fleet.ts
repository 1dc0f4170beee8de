// The whole fleet from validated config: hosts first, then their databases (Postgres, Redis), forks
// after their sources.
import * as pulumi from "@pulumi/pulumi";
import { LoadedFleet } from "./config";
import { DevContainer } from "./devContainer";
import { LabHost } from "./labHost";
import { SkillsRepo } from "./skillsRepo";
import { SparksHost } from "./sparksHost";
import { SparkDatabase } from "./sparkDatabase";
import { PgDatabase, PgFork, PgInstance, PgSnapshot } from "./sparkPg";
import { RedisDatabase, RedisFork, RedisInstance } from "./sparkRedis";

/**
 * Makes each fork once its source is in `databases`, and adds it there: config order need not be
 * dependency order. A round that places nothing means a source that never appears (config refuses
 * those; callers of deployFleet need not have used it): stop there instead of spinning.
 */
function placeForks<F extends { name: string; source: string }, D>(kind: string, forks: F[], databases: Map<string, D>, make: (fork: F, source: D) => D): void {
    let pending = forks;
    while (pending.length > 0) {
        const ready = pending.filter((fork) => databases.has(fork.source));
        if (ready.length === 0) {
            throw new pulumi.RunError(`${kind} forks without a source: ${pending.map((f) => `${f.name} (source ${f.source})`).join(", ")}`);
        }
        for (const fork of ready) databases.set(fork.name, make(fork, databases.get(fork.source)!));
        pending = pending.filter((fork) => !databases.has(fork.name));
    }
}

/** A database's stack output: where it is, what it was forked from, and its URI (a secret). */
const databaseOutput = (db: SparkDatabase) => ({ port: db.port, uri: db.uri, source: db.source, host: db.hostName });

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
            redis: fleet.redis,
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
    placeForks("Postgres", fleet.forks, databases, (fork, source) => {
        const snapshot = fork.sourceSnapshot === undefined ? undefined : snapshots.get(`${fork.source}@${fork.sourceSnapshot}`);
        return new PgFork(fork.name, { host: hosts.get(fork.host)!, source, snapshot }, onHost(fork.host));
    });
    // Redis names are a namespace of their own: a Redis database may share a Postgres one's name.
    const redis = new Map<string, RedisDatabase>(fleet.redis.instances.map((instance) => [instance.name,
        new RedisInstance(instance.name, { host: hosts.get(instance.host)!, protect: fleet.redis.protectInstances }, onHost(instance.host))]));
    placeForks("Redis", fleet.redis.forks, redis, (fork, source) => new RedisFork(fork.name, { host: hosts.get(fork.host)!, source }, onHost(fork.host)));

    const skillsSpec = fleet.skillsRepo;
    const skills = skillsSpec === undefined ? undefined
        : new SkillsRepo("skills", { host: hosts.get(skillsSpec.host)!, spec: skillsSpec }, onHost(skillsSpec.host));
    const devContainers = fleet.devContainers.map((spec) =>
        new DevContainer(spec.name, { host: hosts.get(spec.host)!, spec, skills }, onHost(spec.host)));

    return {
        devContainers: Object.fromEntries(devContainers.map((c) => [c.containerName, c.status])),
        skillsRepo: skills?.status,
        hosts: Object.fromEntries([...hosts].map(([name, host]) => [name, host.verification])),
        postgres: Object.fromEntries([...databases].map(([name, db]) => [name, { ...databaseOutput(db), sourceSnapshot: db.sourceSnapshot }])),
        redis: Object.fromEntries([...redis].map(([name, db]) => [name, databaseOutput(db)])),
    };
}
