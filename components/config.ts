// The only reader of pulumi.Config: validates the stack config against its declaration
// (configSchema.ts), then checks what no single value can tell (duplicates, references, files on
// disk, the lab's rules), and hands out the fleet.
//
// Every value from a stack file passes through here before any resource exists. Problems are
// collected, not thrown one at a time, so a bad stack file gets one line per problem, each naming
// the config key and the value. Messages never echo a secret or anything that looks like key
// material: they end up in logs and CI output.
import * as net from "net";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as pulumiRuntimeConfig from "@pulumi/pulumi/runtime/config";
import { z } from "zod";
import {
    Address, addressIdentity, Cidr, DevContainerSpec, HostEntry, keyMaterial, LAB_SSH_PORT, labAddress, LabSpec, NAMESPACE,
    FORK_SOURCE_PATTERN, NAME_PATTERN, NOT_A_PRIVATE_KEY, OTHER_NAMESPACES, parseCidr, PgForkEntry, PgInstanceSpec, PgSettings, POOL_DEFAULTS, PoolSettings,
    PortRange, PRIVATE_KEY_BLOCK, ProjectFile, readHostKey, RedisConfig, RedisForkEntry, SkillsRepoSpec, SSH_PRIVATE_KEY, SshSettings, StackConfig,
    WORLD_OPEN_BELOW,
} from "./configSchema";
import { readFileIfExists } from "./files";
import { LAB_PASSPHRASE, secretsUnderLabPassphrase } from "./identity";

export { NAME_PATTERN, NAMESPACE, uriHost } from "./configSchema";
export type {
    DevContainerSpec, LabSpec, ListenOn, PgInstanceSpec, PgSettings, PoolSettings, PortRange, RedisInstanceSpec, RedisSettings, SkillsRepoSpec, SshSettings,
} from "./configSchema";

/** A host as the program deploys it: its entry, with sparks:ssh's user and sparks:pool filled in. */
export type HostSpec = Pick<HostEntry, "name" | "address" | "port"> & {
    user: string;
    /** The pinned public host key, "type base64"; none for a lab host, whose key is pinned from the machine the stack makes. */
    hostKey?: string;
    pool: PoolSettings;
    /** Named in sparks:lab.hosts: a machine of the local lab that the stack makes. */
    lab: boolean;
};

export type PgForkSpec = PgForkEntry & {
    /** The host of the source's root instance: a fork is a snapshot, so it lives beside it. */
    host: string;
    /** The instance's snapshot it is made from (source INSTANCE@SNAPSHOT; `source` is then INSTANCE). */
    sourceSnapshot?: string;
};

export type RedisForkSpec = RedisForkEntry & {
    /** The host of the source's root instance: a fork is a copy of it, made beside it. */
    host: string;
};

/** sparks:redis as the program deploys it: its forks placed on their hosts. */
export type RedisFleet = Omit<RedisConfig, "forks"> & { forks: RedisForkSpec[] };

export interface FleetConfig {
    /** Set on lab stacks only: the one kind of stack whose secrets may be under LAB_PASSPHRASE. */
    lab?: LabSpec;
    ssh: SshSettings;
    hosts: HostSpec[];
    pg: PgSettings;
    postgres: PgInstanceSpec[];
    forks: PgForkSpec[];
    redis: RedisFleet;
    devContainers: DevContainerSpec[];
    skillsRepo?: SkillsRepoSpec;
}

/** What the parser needs from the outside world, so unit tests can hand it a fake disk. */
export interface ConfigEnvironment {
    projectDir: string;
    readFile(file: string): string | undefined;
    /** Whether this stack's secrets are encrypted under LAB_PASSPHRASE (see secretsUnderLabPassphrase). */
    secretsUnderLabPassphrase?: boolean;
}

/** Collects every problem with its config key, so the user sees them all in one run. */
class Problems {
    readonly list: string[] = [];
    private readonly secretKeys: Set<string>;

    constructor(secretKeys: readonly string[]) {
        this.secretKeys = new Set([...secretKeys, SSH_PRIVATE_KEY]);
    }

    add(key: string, message: string): void {
        this.list.push(`${key}: ${message}`);
    }

    /** A value the declaration refused: its messages are said of the value, unless it is missing or unknown. */
    addIssue(issue: z.core.$ZodIssue): void {
        const key = keyOf(issue.path);
        if (issue.code === "unrecognized_keys") issue.keys.forEach((field) => this.add(keyOf([...issue.path, field]), issue.message));
        else if (issue.code === "invalid_type" && issue.input === undefined) this.add(key, "is required");
        else this.add(key, `${this.show(key, issue.input)} ${issue.message}`);
    }

    has(key: string): boolean {
        return this.list.some((line) => line.startsWith(`${key}: `));
    }

    /** A value as a message shows it: JSON, unless it is a secret or looks like key material. */
    show(key: string, value: unknown): string {
        // Pulumi marks secrets per top-level key ("sparks:hosts"), whatever path inside was set.
        if (this.secretKeys.has(/^[^.[]*/.exec(key)![0])) return "(value not shown: it is a secret)";
        const looksLike = keyMaterial(typeof value === "string" ? value : JSON.stringify(value) ?? "");
        if (looksLike !== undefined) return `(value not shown: it looks like ${looksLike})`;
        return JSON.stringify(value) ?? String(value);
    }
}

/** "sparks:hosts[0].name" for the path ["sparks:hosts", 0, "name"]. */
function keyOf(path: readonly PropertyKey[]): string {
    return path.map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`)).join("");
}

/** Whether the declaration accepts `value`: the checks below rely only on values it accepted. */
const accepted = (schema: z.ZodType, value: unknown) => schema.safeParse(value).success;

/**
 * What the config says wherever it can be read, once the declaration refused part of it, so the
 * checks across values still find their problems: unknown fields are dropped, a refused value
 * becomes its default, and a refused string is kept (a refused name still names something; one
 * that is no string at all becomes ""). A list item that cannot be read is dropped.
 */
function salvage(schema: z.ZodType, input: unknown, fallback?: unknown): unknown {
    const parsed = schema.safeParse(input);
    if (parsed.success) return parsed.data;
    if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) {
        return salvage(schema.unwrap() as z.ZodType, input, schema.parse(undefined));
    }
    if (schema instanceof z.ZodObject && typeof input === "object" && input !== null && !Array.isArray(input)) {
        return Object.fromEntries(Object.entries(schema.shape as Record<string, z.ZodType>).flatMap(([field, value]) => {
            const read = salvage(value, (input as Record<string, unknown>)[field]);
            return read === undefined ? [] : [[field, read]];
        }));
    }
    if (schema instanceof z.ZodArray && Array.isArray(input)) {
        return input.map((item) => salvage(schema.element as z.ZodType, item)).filter((item) => item !== undefined);
    }
    if (schema instanceof z.ZodString) return typeof input === "string" ? input : fallback ?? "";
    return fallback;
}

/**
 * A file named relative to the project, and its text. A name the declaration refused is never
 * read, so an error cannot tell whether it exists.
 */
function readProjectFile(file: string | undefined, key: string, env: ConfigEnvironment, ifMissing: string, problems: Problems): string | undefined {
    if (file === undefined || !accepted(ProjectFile, file)) return undefined;
    const text = env.readFile(path.join(env.projectDir, file));
    if (text === undefined) problems.add(key, `${problems.show(key, file)} does not exist (${ifMissing})`);
    return text;
}

function checkPrivateKeyFile(ssh: SshSettings, env: ConfigEnvironment, problems: Problems): void {
    const key = "sparks:ssh.privateKeyFile";
    const text = readProjectFile(ssh.privateKeyFile, key, env, "paths are relative to the project directory", problems);
    if (text !== undefined && !PRIVATE_KEY_BLOCK.test(text)) {
        problems.add(key, `${problems.show(key, ssh.privateKeyFile)} holds no private key (no "-----BEGIN ... PRIVATE KEY-----" block)`);
    }
}

function checkSshPrivateKey(value: string | undefined, secretKeys: readonly string[], problems: Problems): void {
    if (value === undefined) return;
    // One that is no string at all was refused already, and stands here as "".
    const refused = problems.has(SSH_PRIVATE_KEY);
    const setIt = `pulumi config set --secret ${SSH_PRIVATE_KEY} < keyfile`;
    if (!secretKeys.includes(SSH_PRIVATE_KEY)) {
        problems.add(SSH_PRIVATE_KEY, `is stored in plain text; set it with \`${setIt}\``);
    }
    if (refused) return;
    if (value.trim() === "") problems.add(SSH_PRIVATE_KEY, `is empty (store the key: ${setIt})`);
    else if (!PRIVATE_KEY_BLOCK.test(value)) problems.add(SSH_PRIVATE_KEY, `${problems.show(SSH_PRIVATE_KEY, value)} ${NOT_A_PRIVATE_KEY}`);
}

/** The key a host is pinned to: its hostKey, or the one in its hostKeyFile. */
function pinnedHostKey(host: HostEntry, key: string, env: ConfigEnvironment, problems: Problems): string | undefined {
    if ((host.hostKey === undefined) === (host.hostKeyFile === undefined)) {
        problems.add(key, "needs exactly one of hostKey (the pinned public host key) or hostKeyFile");
        return undefined;
    }
    if (host.hostKey !== undefined) {
        // One the declaration refused has its message already.
        const read = readHostKey(host.hostKey);
        return "pinned" in read ? read.pinned : undefined;
    }
    const fileKey = `${key}.hostKeyFile`;
    const text = readProjectFile(host.hostKeyFile, fileKey, env, "for a lab machine the stack makes, name it in sparks:lab.hosts instead", problems);
    if (text === undefined) return undefined;
    const read = readHostKey(text);
    if ("pinned" in read) return read.pinned;
    problems.add(fileKey, `${problems.show(fileKey, host.hostKeyFile)} ${read.problem}`);
    return undefined;
}

/** A lab host is the machine the stack makes: at the lab's address for it, with the key it was made with. */
function checkLabHost(host: HostEntry, key: string, problems: Problems): void {
    if (host.hostKey !== undefined || host.hostKeyFile !== undefined) {
        problems.add(key, "is a lab host (sparks:lab.hosts): its key is pinned from the machine the stack makes; remove hostKey/hostKeyFile");
    }
    const address = labAddress(host.name);
    if (address === undefined) return; // not a lab machine's name: refused in sparks:lab.hosts
    const where = `lab host ${host.name} is at ${address} port ${LAB_SSH_PORT}`;
    if (accepted(Address, host.address) && host.address !== address) {
        problems.add(`${key}.address`, `${problems.show(`${key}.address`, host.address)} is not the lab's address for this host (${where})`);
    }
    if (host.port !== LAB_SSH_PORT) {
        problems.add(`${key}.port`, `${problems.show(`${key}.port`, host.port)} is not the lab's port for this host (${where})`);
    }
}

function readHosts(config: StackConfig, env: ConfigEnvironment, problems: Problems): HostSpec[] {
    const { "sparks:ssh": ssh, "sparks:pool": pool, "sparks:lab": lab } = config;
    return config["sparks:hosts"].map((host, i) => {
        const key = `sparks:hosts[${i}]`;
        const hostPool: PoolSettings = { device: "", ...POOL_DEFAULTS, ...pool, ...host.pool };
        if (hostPool.device === "") problems.add(key, "has no btrfs pool device: set sparks:pool.device (or this host's pool.device)");
        const isLab = lab?.hosts.includes(host.name) ?? false;
        if (isLab) checkLabHost(host, key, problems);
        return {
            name: host.name,
            address: host.address,
            port: host.port,
            user: host.user ?? ssh.user,
            hostKey: isLab ? undefined : pinnedHostKey(host, key, env, problems),
            pool: hostPool,
            lab: isLab,
        };
    });
}

function checkUnique(names: { name: string; key: string }[], problems: Problems): void {
    const seen = new Map<string, string>();
    for (const { name, key } of names) {
        if (name === "") continue;
        const first = seen.get(name);
        if (first !== undefined) problems.add(key, `${problems.show(key, name)} is already used by ${first}`);
        else seen.set(name, key);
    }
}

/** Two hosts at one address and port are one server, however the address is spelled. */
function checkUniqueAddresses(hosts: HostSpec[], problems: Problems): void {
    const seen = new Map<string, number>();
    hosts.forEach((host, i) => {
        if (!accepted(Address, host.address)) return;
        const identity = `${addressIdentity(host.address)} ${host.port}`;
        const first = seen.get(identity);
        if (first === undefined) {
            seen.set(identity, i);
            return;
        }
        const key = `sparks:hosts[${i}].address`;
        problems.add(key, `${problems.show(key, host.address)} port ${host.port} is already used by sparks:hosts[${first}] ` +
            `(${problems.show(`sparks:hosts[${first}].address`, hosts[first].address)} port ${host.port})`);
    });
}

/** A dev container's address is its own: no other container's or host's, and on a lab host one
 *  the lab leaves free (10.89.42.111-254: the bridge is .1, lab machines .11-.110). */
function checkDevContainerAddresses(containers: DevContainerSpec[], hosts: HostSpec[], problems: Problems): void {
    const taken = new Map<string, string>(hosts.map((h, i) => [addressIdentity(h.address), `sparks:hosts[${i}].address`]));
    containers.forEach((c, i) => {
        const key = `sparks:devContainers[${i}].address`;
        if (typeof c.address !== "string" || !net.isIPv4(c.address)) return; // refused by the schema already
        const identity = addressIdentity(c.address);
        const holder = taken.get(identity);
        if (holder !== undefined) {
            problems.add(key, `${problems.show(key, c.address)} is already used by ${holder}`);
            return;
        }
        taken.set(identity, key);
        const host = hosts.find((h) => h.name === c.host);
        const last = Number(c.address.split(".")[3]);
        if (host?.lab && (!c.address.startsWith("10.89.42.") || last < 111 || last > 254)) {
            problems.add(key, `${problems.show(key, c.address)} is not free on the lab network: a container on a lab host needs an address from 10.89.42.111 to 10.89.42.254`);
        }
    });
}

/** Where one host tool's databases are in the config, and what their forks' sources may be. */
interface DatabaseKeys {
    /** The tool that runs them on a host, handing each a port of its range. */
    tool: string;
    ports: string;
    instances: string;
    forks: string;
    /** A fork's source as the declaration accepts it. */
    forkSource: RegExp;
}
const POSTGRES_KEYS: DatabaseKeys = {
    tool: "spark-pg", ports: "sparks:pg.ports", instances: "sparks:postgres", forks: "sparks:forks", forkSource: FORK_SOURCE_PATTERN,
};
const REDIS_KEYS: DatabaseKeys = {
    tool: "spark-redis", ports: "sparks:redis.ports", instances: "sparks:redis.instances", forks: "sparks:redis.forks", forkSource: NAME_PATTERN,
};

/** A tool's port range, and its databases: each holds one of the range's ports on its host. */
interface PortUse {
    keys: DatabaseKeys;
    ports: PortRange;
    instances: { host: string }[];
    forks: { host: string }[];
}

/** The skills repo's port is its host's alone: not its sshd's, not one a database tool hands out. */
function checkSkillsPort(repo: SkillsRepoSpec, uses: PortUse[], hosts: HostSpec[], problems: Problems): void {
    const key = "sparks:skillsRepo.port";
    const host = hosts.find((h) => h.name === repo.host);
    if (typeof repo.port !== "number") return; // refused by the schema already
    const taken = uses.find(({ ports }) => repo.port >= ports.first && repo.port <= ports.last);
    if (taken !== undefined) {
        problems.add(key, `${problems.show(key, repo.port)} is in ${taken.keys.ports} (${taken.ports.first}-${taken.ports.last}), ` +
            `which ${taken.keys.tool} hands to databases`);
    } else if (host !== undefined && repo.port === host.port) {
        problems.add(key, `${problems.show(key, repo.port)} is the SSH port of host ${host.name}`);
    }
}

function checkHostRef(host: string, key: string, hosts: HostSpec[], problems: Problems): void {
    if (host !== "" && !hosts.some((h) => h.name === host)) {
        problems.add(key, `${problems.show(key, host)} is not a host in sparks:hosts`);
    }
}

/** World-open CIDRs only on purpose: every address in them may try password logins. */
function checkWorldOpen(allow: string[], allowWorld: boolean, problems: Problems): void {
    allow.forEach((item, i) => {
        const key = `sparks:pg.allow[${i}]`;
        const cidr = accepted(Cidr, item) ? parseCidr(item)! : undefined;
        if (cidr !== undefined && cidr.bits < WORLD_OPEN_BELOW[cidr.family] && !allowWorld) {
            problems.add(key, `${problems.show(key, item)} is open to the world (a prefix shorter than /${WORLD_OPEN_BELOW[cidr.family]}: ` +
                "any address in it may try password logins to every instance and fork; set sparks:pg.allowWorld: true if that is meant)");
        }
    });
}

/** A port range as messages show it: "5432-5499". */
const shownRange = (use: PortUse, problems: Problems) => problems.show(use.keys.ports, `${use.ports.first}-${use.ports.last}`);

/** Every instance and fork holds a port of its tool's range on its host for as long as it exists. */
function checkPortRange(use: PortUse, hosts: HostSpec[], problems: Problems): void {
    const size = use.ports.last - use.ports.first + 1;
    for (const host of new Set(hosts.map((h) => h.name))) {
        const instances = use.instances.filter((p) => p.host === host).length;
        const forksHere = use.forks.filter((f) => f.host === host).length;
        if (host !== "" && instances + forksHere > size) {
            problems.add(use.keys.ports, `${shownRange(use, problems)} has ${count(size, "port")}, ` +
                `but host ${host} needs ${instances + forksHere} (${count(instances, "instance")} and ${count(forksHere, "fork")}); widen the range`);
        }
    }
}

/** Each tool hands out its own range's ports, unaware of the others': two ranges that overlap could give one port twice. */
function checkPortsApart(uses: PortUse[], problems: Problems): void {
    uses.forEach((use, i) => {
        const other = uses.slice(0, i).find(({ ports }) => ports.first <= use.ports.last && use.ports.first <= ports.last);
        if (other !== undefined) {
            problems.add(use.keys.ports, `${shownRange(use, problems)} overlaps ${other.keys.ports} (${other.ports.first}-${other.ports.last}): ` +
                `${use.keys.tool} and ${other.keys.tool} could hand out the same port`);
        }
    });
}

/** "1 fork", "2 forks". */
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/**
 * One tool's instances and forks: their names are one namespace (each is a database with its own
 * URI), instances are on hosts of sparks:hosts, and each fork is placed on its root instance's host.
 */
function readDatabases<F extends { name: string; source: string }>(keys: DatabaseKeys, instances: DatabaseInstance[], forks: F[], hosts: HostSpec[],
    problems: Problems) {
    checkUnique([
        ...instances.map((p, i) => ({ name: p.name, key: `${keys.instances}[${i}].name` })),
        ...forks.map((f, i) => ({ name: f.name, key: `${keys.forks}[${i}].name` })),
    ], problems);
    instances.forEach((p, i) => checkHostRef(p.host, `${keys.instances}[${i}].host`, hosts, problems));
    return resolveForks(keys, forks, instances, problems);
}

/** An instance as forks see it: Postgres instances may have named snapshots to fork, Redis ones none. */
type DatabaseInstance = { name: string; host: string; snapshots?: string[] };

/** Follows each fork's source chain to its root instance; reports unknown sources, snapshots and cycles. */
function resolveForks<F extends { name: string; source: string }>(keys: DatabaseKeys, entries: F[], instances: DatabaseInstance[], problems: Problems) {
    const sourceOf = new Map(entries.map((f) => [f.name, f.source.split("@")[0]]));
    const hostOf = new Map(instances.map((p) => [p.name, p.host]));
    return entries.map((entry, i): F & { host: string; sourceSnapshot?: string } => {
        const key = `${keys.forks}[${i}].source`;
        const [source, sourceSnapshot] = entry.source.split("@");
        const fork = { ...entry, source, ...(sourceSnapshot === undefined ? {} : { sourceSnapshot }) };
        // A source the schema refused has said so already.
        if (!keys.forkSource.test(entry.source)) return { ...fork, host: "" };
        if (sourceSnapshot !== undefined) {
            const instance = instances.findIndex((p) => p.name === source);
            if (instance < 0) {
                problems.add(key, `${problems.show(key, entry.source)}: only an instance in ${keys.instances} has snapshots, and '${source}' is none`);
                return { ...fork, host: "" };
            }
            if (!(instances[instance].snapshots ?? []).includes(sourceSnapshot)) {
                problems.add(key, `${problems.show(key, entry.source)}: '${sourceSnapshot}' is not in ${keys.instances}[${instance}].snapshots`);
                return { ...fork, host: "" };
            }
        }
        const visited = new Set<string>([fork.name]);
        let current = fork.source;
        while (!hostOf.has(current)) {
            if (current === "") return { ...fork, host: "" };
            if (visited.has(current)) {
                problems.add(key, `${problems.show(key, fork.source)} leads to a cycle of forks`);
                return { ...fork, host: "" };
            }
            const next = sourceOf.get(current);
            if (next === undefined) {
                // Only the fork that names the missing source reports it, not its descendants.
                if (current === fork.source) problems.add(key, `${problems.show(key, current)} is not an instance in ${keys.instances} or a fork in ${keys.forks}`);
                return { ...fork, host: "" };
            }
            visited.add(current);
            current = next;
        }
        return { ...fork, host: hostOf.get(current) ?? "" };
    });
}

/**
 * Validates the `sparks:` config. `raw` maps full keys ("sparks:hosts") to parsed values, as
 * `pulumi config` stores them; `secretKeys` are the keys stored as secrets, whose values no message
 * shows (sparks:sshPrivateKey is always treated as one). Returns the typed fleet, or every problem found.
 */
export function parseFleetConfig(raw: Record<string, unknown>, env: ConfigEnvironment, secretKeys: readonly string[] = []): { fleet?: FleetConfig; problems: string[] } {
    const problems = new Problems(secretKeys);
    const sparksKeys: Record<string, unknown> = {};
    for (const [fullKey, value] of Object.entries(raw)) {
        // The namespace ends at the first colon: "sparks:hosts:extra" is an unknown sparks: key.
        // (The Pulumi CLI refuses such keys, but PULUMI_CONFIG can still carry them.)
        const namespace = fullKey.split(":")[0];
        if (namespace === NAMESPACE) sparksKeys[fullKey] = value;
        else if (!OTHER_NAMESPACES.includes(namespace)) {
            problems.add(fullKey, `unknown config namespace ${JSON.stringify(namespace)} (Sparks settings go under "sparks:")`);
        }
    }
    const parsed = StackConfig.safeParse(sparksKeys, { reportInput: true });
    parsed.error?.issues.forEach((issue) => problems.addIssue(issue));
    const config = parsed.success ? parsed.data : salvage(StackConfig, sparksKeys) as StackConfig;

    const lab = config["sparks:lab"];
    if (env.secretsUnderLabPassphrase && lab === undefined) {
        problems.add("sparks:lab", `is not set, but this stack's secrets are encrypted under the public lab passphrase ("${LAB_PASSPHRASE}", ` +
            "which toolchain/env.sh sets when no other is given): only a lab stack may use it. Set your own PULUMI_CONFIG_PASSPHRASE " +
            "(or PULUMI_CONFIG_PASSPHRASE_FILE, or a KMS secrets provider) before `pulumi stack init`, or move an existing stack " +
            "with `pulumi stack change-secrets-provider`");
    }
    const ssh = config["sparks:ssh"];
    checkPrivateKeyFile(ssh, env, problems);
    checkSshPrivateKey(config["sparks:sshPrivateKey"], secretKeys, problems);
    const hosts = readHosts(config, env, problems);
    const { allowWorld, ...pg } = config["sparks:pg"];
    checkWorldOpen(pg.allow, allowWorld, problems);
    const { "sparks:postgres": postgres, "sparks:redis": redis, "sparks:devContainers": devContainers, "sparks:skillsRepo": skillsRepo } = config;

    checkUnique(hosts.map((h, i) => ({ name: h.name, key: `sparks:hosts[${i}].name` })), problems);
    checkUniqueAddresses(hosts, problems);
    checkUnique(devContainers.map((d, i) => ({ name: d.name, key: `sparks:devContainers[${i}].name` })), problems);
    if (lab !== undefined) {
        checkUnique(lab.hosts.map((name, i) => ({ name, key: `sparks:lab.hosts[${i}]` })), problems);
        lab.hosts.forEach((name, i) => checkHostRef(name, `sparks:lab.hosts[${i}]`, hosts, problems));
    }
    postgres.forEach((p, i) => checkUnique((p.snapshots ?? []).map((name, j) => ({ name, key: `sparks:postgres[${i}].snapshots[${j}]` })), problems));
    devContainers.forEach((d, i) => checkHostRef(d.host, `sparks:devContainers[${i}].host`, hosts, problems));
    if (skillsRepo) checkHostRef(skillsRepo.host, "sparks:skillsRepo.host", hosts, problems);
    const forks = readDatabases(POSTGRES_KEYS, postgres, config["sparks:forks"], hosts, problems);
    const redisForks = readDatabases(REDIS_KEYS, redis.instances, redis.forks, hosts, problems);
    const portUses: PortUse[] = [
        { keys: POSTGRES_KEYS, ports: pg.ports, instances: postgres, forks },
        { keys: REDIS_KEYS, ports: redis.ports, instances: redis.instances, forks: redisForks },
    ].filter(({ keys }) => !problems.has(keys.ports)); // a refused range stands at its default here
    portUses.forEach((use) => checkPortRange(use, hosts, problems));
    checkPortsApart(portUses, problems);

    checkDevContainerAddresses(devContainers, hosts, problems);

    if (skillsRepo !== undefined) checkSkillsPort(skillsRepo, portUses, hosts, problems);

    // A lab stack logs in with the lab's own key.
    const loginWays = [config["sparks:sshPrivateKey"] !== undefined, ssh.privateKeyFile !== undefined, ssh.agent, lab !== undefined];
    if (hosts.length > 0 && loginWays.filter(Boolean).length !== 1) {
        problems.add("sparks:ssh", "needs exactly one way to log in: sparks:sshPrivateKey (a secret), ssh.privateKeyFile, ssh.agent: true, " +
            "or sparks:lab (the lab's own key)");
    }

    if (problems.list.length > 0) return { problems: problems.list };
    return { fleet: { lab, ssh, hosts, pg, postgres, forks, redis: { ...redis, forks: redisForks }, devContainers, skillsRepo }, problems: [] };
}

/** Pulumi hands every value over as a string; structured ones are JSON. */
function decodeConfigValue(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}


/** The SSH private key as a Pulumi secret, or undefined when the ssh agent (or the lab's key) is used. */
export type SshKey = pulumi.Output<string> | undefined;

export interface LoadedFleet extends FleetConfig {
    sshPrivateKey: SshKey;
}

// The runtime knows which keys were stored encrypted (PULUMI_CONFIG_SECRET_KEYS, as full keys such
// as "sparks:hosts"), but does not declare it in its types.
const isConfigSecret = (pulumiRuntimeConfig as unknown as { isConfigSecret(key: string): boolean }).isConfigSecret;

/** Reads and validates the stack config; fails the run with every problem before any resource exists. */
export function loadFleetConfig(): LoadedFleet {
    const raw = Object.fromEntries(
        Object.entries(pulumi.runtime.allConfig()).map(([key, text]) => [key, decodeConfigValue(text)]),
    );
    const env = { projectDir: process.cwd(), readFile: readFileIfExists, secretsUnderLabPassphrase: secretsUnderLabPassphrase() };
    const { fleet, problems } = parseFleetConfig(raw, env, Object.keys(raw).filter((key) => isConfigSecret(key)));
    if (fleet === undefined) {
        throw new pulumi.RunError(`invalid stack config, ${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
    }
    const config = new pulumi.Config(NAMESPACE);
    let sshPrivateKey: SshKey;
    if (raw[SSH_PRIVATE_KEY] !== undefined) sshPrivateKey = config.requireSecret("sshPrivateKey");
    else if (fleet.ssh.privateKeyFile !== undefined) {
        sshPrivateKey = pulumi.secret(readFileIfExists(path.join(env.projectDir, fleet.ssh.privateKeyFile)) ?? "");
    }
    return { ...fleet, sshPrivateKey };
}
