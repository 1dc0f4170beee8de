// The stack config schema for the whole Sparks fleet, and the only reader of pulumi.Config.
//
// Every value from a stack file passes through here before any resource exists. Problems are
// collected, not thrown one at a time, so a bad stack file gets one line per problem, each naming
// the config key and the value. Names that end up in host paths, unit names or command lines are
// held to NAME_PATTERN, so nothing downstream has to wonder about quoting them.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as pulumiRuntimeConfig from "@pulumi/pulumi/runtime/config";

export const NAMESPACE = "sparks";

/** Lower-case letters, digits and inner dashes, 2-32 long: safe as a path part, unit name and argv. */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;

/** How the deployment reaches every host over SSH. */
export interface SshSettings {
    /** Login user on the hosts. @default "root" */
    user: string;
    /** A private key file, relative to the project (the lab's key in dev). */
    privateKeyFile?: string;
    /** Use the ssh agent at SSH_AUTH_SOCK instead of a key. @default false */
    agent: boolean;
    /** Attempts to reach a host's sshd before giving up, with exponential backoff. @default 6 */
    connectAttempts: number;
}

/** The btrfs pool every Sparks host keeps its data on. */
export interface PoolSettings {
    /** A whole blank disk. Setup refuses a disk that holds any filesystem but a Sparks pool. */
    device: string;
    /** @default "/srv/sparks" */
    mountPoint: string;
    /** Wipe the disk when the host leaves the config. Takes effect on the `up` after it is set. @default false */
    wipeOnDelete: boolean;
}

export interface HostSpec {
    name: string;
    address: string;
    port: number;
    user: string;
    /** The pinned public host key, "type base64". */
    hostKey: string;
    pool: PoolSettings;
}

export type ListenOn = "loopback" | "private";

/** Fleet-wide settings for spark-pg. */
export interface PgSettings {
    /** Ports handed to instances and forks, inclusive. @default "5432-5499" */
    ports: { first: number; last: number };
    /** Where Postgres listens: loopback and/or the host's address. @default ["loopback", "private"] */
    listen: ListenOn[];
    /** CIDRs that pg_hba admits over the network (scram-sha-256); loopback is always admitted. @default [] */
    allow: string[];
    /** Removing an instance from config fails `pulumi up` instead of dropping its data. Forks are never protected. @default true */
    protectInstances: boolean;
}

export interface PgInstanceSpec {
    name: string;
    host: string;
}

export interface PgForkSpec {
    name: string;
    /** A Postgres instance or another fork. */
    source: string;
    /** The host of the source's root instance: a fork is a snapshot, so it lives beside it. */
    host: string;
}

export interface DevContainerSpec {
    name: string;
    host: string;
}

export interface SkillsRepoSpec {
    host: string;
    /** @default 8080 */
    port: number;
}

export interface FleetConfig {
    ssh: SshSettings;
    hosts: HostSpec[];
    pg: PgSettings;
    postgres: PgInstanceSpec[];
    forks: PgForkSpec[];
    devContainers: DevContainerSpec[];
    skillsRepo?: SkillsRepoSpec;
}

/** What the parser needs from the outside world, so unit tests can hand it a fake disk. */
export interface ConfigEnvironment {
    projectDir: string;
    readFile(file: string): string | undefined;
}

// Top-level keys under `sparks:`. `sshPrivateKey` is the one secret: read by loadFleetConfig only.
const TOP_LEVEL_KEYS = ["ssh", "sshPrivateKey", "pool", "hosts", "pg", "postgres", "forks", "devContainers", "skillsRepo"];
// Providers' own settings live in their namespaces; anything else is most likely a typo.
const OTHER_NAMESPACES = ["pulumi", "command", "random"];

const DEFAULT_MOUNT_POINT = "/srv/sparks";
const HOST_KEY_PATTERN = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,2}$/;
const DNS_NAME_PATTERN = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DEVICE_PATTERN = /^\/dev\/[A-Za-z0-9_][A-Za-z0-9_/-]*$/;
const ABSOLUTE_PATH_PATTERN = /^(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/;
const RELATIVE_FILE_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_./-]*$/;

/** Collects every problem with its config key, so the user sees them all in one run. */
class Problems {
    readonly list: string[] = [];
    add(key: string, message: string): void {
        this.list.push(`${key}: ${message}`);
    }
}

const show = (value: unknown): string => JSON.stringify(value) ?? String(value);

/** A rule for a string value, and how to name it in an error. */
interface Check {
    test(text: string): boolean;
    describe: string;
}

const matches = (pattern: RegExp, describe: string): Check => ({ test: (text) => pattern.test(text), describe });

type Obj = Record<string, unknown>;

/** Reads fields of one config object, reporting wrong types and unknown fields against `key`. */
class Fields {
    constructor(
        private readonly obj: Obj,
        readonly key: string,
        private readonly problems: Problems,
        allowed: string[],
    ) {
        for (const field of Object.keys(obj)) {
            if (!allowed.includes(field)) {
                problems.add(`${key}.${field}`, `unknown field (allowed: ${allowed.join(", ")})`);
            }
        }
    }

    has(field: string): boolean {
        return this.obj[field] !== undefined;
    }

    string(field: string, check: Check, fallback?: string): string | undefined {
        const value = this.obj[field];
        if (value === undefined) {
            if (fallback === undefined) this.problems.add(`${this.key}.${field}`, "is required");
            return fallback;
        }
        if (typeof value !== "string" || !check.test(value)) {
            this.problems.add(`${this.key}.${field}`, `${show(value)} is not ${check.describe}`);
            // A bad string still names the thing, so it does not also show up as "missing".
            return typeof value === "string" ? value : undefined;
        }
        return value;
    }

    optionalString(field: string, check: Check): string | undefined {
        return this.has(field) ? this.string(field, check) : undefined;
    }

    integer(field: string, min: number, max: number, fallback: number, describe: string): number {
        const value = this.obj[field];
        if (value === undefined) return fallback;
        if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
            this.problems.add(`${this.key}.${field}`, `${show(value)} is not ${describe} (${min}-${max})`);
            return fallback;
        }
        return value;
    }

    boolean(field: string, fallback: boolean): boolean {
        const value = this.obj[field];
        if (value === undefined) return fallback;
        if (typeof value !== "boolean") {
            this.problems.add(`${this.key}.${field}`, `${show(value)} is not true or false`);
            return fallback;
        }
        return value;
    }

    object(field: string): Obj | undefined {
        return asObject(this.obj[field], `${this.key}.${field}`, this.problems);
    }

    list(field: string): unknown[] {
        return asList(this.obj[field], `${this.key}.${field}`, this.problems);
    }
}

function asObject(value: unknown, key: string, problems: Problems): Obj | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problems.add(key, `${show(value)} is not an object`);
        return undefined;
    }
    return value as Obj;
}

function asList(value: unknown, key: string, problems: Problems): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
        problems.add(key, `${show(value)} is not a list`);
        return [];
    }
    return value;
}

const NAME = matches(NAME_PATTERN, "a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)");
const UNIX_USER = matches(/^[a-z_][a-z0-9_-]{0,31}$/, "a valid Unix user name");
const DEVICE = matches(DEVICE_PATTERN, "a device path under /dev");
const MOUNT_POINT = matches(ABSOLUTE_PATH_PATTERN, "an absolute path (letters, digits, _ . -; no part may start with '.')");
const FILE = matches(RELATIVE_FILE_PATTERN, "a file path (letters, digits, _ . / -)");
const ANY_STRING = matches(/^[\s\S]*$/, "a string");
const PORT_RANGE = matches(/^\d{1,5}-\d{1,5}$/, "a port range like \"5432-5499\"");

function isIPv4(text: string): boolean {
    const parts = text.split(".");
    return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

function isIPv6(text: string): boolean {
    return /^[0-9a-fA-F:]+$/.test(text) && text.includes(":") && text.split("::").length <= 2;
}

const ADDRESS: Check = {
    test: (text) => isIPv4(text) || isIPv6(text) || DNS_NAME_PATTERN.test(text),
    describe: "an IP address or DNS name",
};

const CIDR: Check = {
    test: (text) => {
        const [address, bits, extra] = text.split("/");
        if (extra !== undefined || bits === undefined || !/^\d{1,3}$/.test(bits)) return false;
        return (isIPv4(address) && Number(bits) <= 32) || (isIPv6(address) && Number(bits) <= 128);
    },
    describe: "a CIDR like 10.0.0.0/24",
};

function relativeFileWithinProject(file: string): boolean {
    return !file.split("/").includes("..");
}

function parseSsh(value: unknown, problems: Problems): SshSettings {
    const obj = asObject(value, "sparks:ssh", problems) ?? {};
    const f = new Fields(obj, "sparks:ssh", problems, ["user", "privateKeyFile", "agent", "connectAttempts"]);
    const privateKeyFile = f.optionalString("privateKeyFile", FILE);
    if (privateKeyFile !== undefined && !relativeFileWithinProject(privateKeyFile)) {
        problems.add("sparks:ssh.privateKeyFile", `${show(privateKeyFile)} must stay inside the project (no '..')`);
    }
    return {
        user: f.string("user", UNIX_USER, "root") ?? "root",
        privateKeyFile,
        agent: f.boolean("agent", false),
        connectAttempts: f.integer("connectAttempts", 1, 20, 6, "a number of attempts"),
    };
}

function parsePool(value: unknown, key: string, problems: Problems, defaults?: PoolSettings): PoolSettings | undefined {
    const obj = asObject(value, key, problems);
    if (obj === undefined) return defaults;
    const f = new Fields(obj, key, problems, ["device", "mountPoint", "wipeOnDelete"]);
    return {
        device: f.string("device", DEVICE, defaults?.device) ?? "",
        mountPoint: f.string("mountPoint", MOUNT_POINT, defaults?.mountPoint ?? DEFAULT_MOUNT_POINT) ?? DEFAULT_MOUNT_POINT,
        wipeOnDelete: f.boolean("wipeOnDelete", defaults?.wipeOnDelete ?? false),
    };
}

function parseHostKey(f: Fields, env: ConfigEnvironment, problems: Problems): string {
    const inline = f.optionalString("hostKey", ANY_STRING);
    const file = f.optionalString("hostKeyFile", FILE);
    if ((inline === undefined) === (file === undefined)) {
        problems.add(f.key, "needs exactly one of hostKey (the pinned public host key) or hostKeyFile");
        return "";
    }
    let text = inline;
    let key = `${f.key}.hostKey`;
    if (file !== undefined) {
        key = `${f.key}.hostKeyFile`;
        if (!relativeFileWithinProject(file)) {
            problems.add(key, `${show(file)} must stay inside the project (no '..')`);
            return "";
        }
        text = env.readFile(path.join(env.projectDir, file));
        if (text === undefined) {
            problems.add(key, `${show(file)} does not exist (for the lab's hosts: run lab/sparks-lab up)`);
            return "";
        }
    }
    // Keep "type base64" and drop the comment: the comment is not part of the key.
    const [type, data] = (text ?? "").trim().split(/\s+/);
    const pinned = `${type} ${data}`;
    if (!HOST_KEY_PATTERN.test(pinned)) {
        problems.add(key, `${show(file ?? inline)} is not an SSH public host key ("ssh-ed25519 AAAA...")`);
        return "";
    }
    if (type === "ssh-rsa") {
        // pulumi-command (upstream, and our stand-in with it) asks for a pinned RSA key's SHA-1
        // "ssh-rsa" signatures only, which OpenSSH 8.8 and later no longer offer: it could not connect.
        problems.add(key, `${show(file ?? inline)} is an RSA host key, which the command provider verifies only with SHA-1 ` +
            `signatures ("ssh-rsa") that OpenSSH 8.8 and later refuse; pin the host's ed25519 or ECDSA key instead`);
        return "";
    }
    return pinned;
}

function parseHosts(value: unknown, ssh: SshSettings, pool: PoolSettings | undefined, env: ConfigEnvironment, problems: Problems): HostSpec[] {
    return asList(value, "sparks:hosts", problems).flatMap((item, i) => {
        const key = `sparks:hosts[${i}]`;
        const obj = asObject(item, key, problems);
        if (obj === undefined) return [];
        const f = new Fields(obj, key, problems, ["name", "address", "port", "user", "hostKey", "hostKeyFile", "pool"]);
        const hostPool = parsePool(obj.pool, `${key}.pool`, problems, pool);
        if (hostPool === undefined || hostPool.device === "") {
            problems.add(key, "has no btrfs pool device: set sparks:pool.device (or this host's pool.device)");
        }
        return [{
            name: f.string("name", NAME) ?? "",
            address: f.string("address", ADDRESS) ?? "",
            port: f.integer("port", 1, 65535, 22, "a TCP port"),
            user: f.string("user", UNIX_USER, ssh.user) ?? ssh.user,
            hostKey: parseHostKey(f, env, problems),
            pool: hostPool ?? { device: "", mountPoint: DEFAULT_MOUNT_POINT, wipeOnDelete: false },
        }];
    });
}

function parsePg(value: unknown, problems: Problems): PgSettings {
    const obj = asObject(value, "sparks:pg", problems) ?? {};
    const f = new Fields(obj, "sparks:pg", problems, ["ports", "listen", "allow", "protectInstances"]);
    let ports = { first: 5432, last: 5499 };
    const range = f.optionalString("ports", PORT_RANGE);
    if (range !== undefined) {
        const [first, last] = range.split("-").map(Number);
        if (first < 1024 || last > 65535 || first > last) {
            problems.add("sparks:pg.ports", `${show(range)} is not a port range within 1024-65535, low to high`);
        } else {
            ports = { first, last };
        }
    }
    const listen = f.has("listen") ? f.list("listen") : ["loopback", "private"];
    listen.forEach((item, i) => {
        if (item !== "loopback" && item !== "private") {
            problems.add(`sparks:pg.listen[${i}]`, `${show(item)} is not "loopback" or "private"`);
        }
    });
    const allow = f.list("allow");
    allow.forEach((item, i) => {
        if (typeof item !== "string" || !CIDR.test(item)) {
            problems.add(`sparks:pg.allow[${i}]`, `${show(item)} is not ${CIDR.describe}`);
        }
    });
    return { ports, listen: listen as ListenOn[], allow: allow as string[], protectInstances: f.boolean("protectInstances", true) };
}

/** Parses a list of `{name, <ref>}` items, where `ref` names something declared elsewhere. */
function parseNamedRefs(value: unknown, key: string, refField: string, problems: Problems): { name: string; ref: string }[] {
    return asList(value, key, problems).flatMap((item, i) => {
        const obj = asObject(item, `${key}[${i}]`, problems);
        if (obj === undefined) return [];
        const f = new Fields(obj, `${key}[${i}]`, problems, ["name", refField]);
        return [{ name: f.string("name", NAME) ?? "", ref: f.string(refField, NAME) ?? "" }];
    });
}

function checkUnique(names: { name: string; key: string }[], problems: Problems): void {
    const seen = new Map<string, string>();
    for (const { name, key } of names) {
        if (name === "") continue;
        const first = seen.get(name);
        if (first !== undefined) problems.add(key, `${show(name)} is already used by ${first}`);
        else seen.set(name, key);
    }
}

function checkHostRef(host: string, key: string, hosts: HostSpec[], problems: Problems): void {
    if (host !== "" && !hosts.some((h) => h.name === host)) {
        problems.add(key, `${show(host)} is not a host in sparks:hosts`);
    }
}

/** Follows each fork's source chain to its root instance; reports unknown sources and cycles. */
function resolveForks(refs: { name: string; ref: string }[], postgres: PgInstanceSpec[], problems: Problems): PgForkSpec[] {
    const sourceOf = new Map(refs.map((r) => [r.name, r.ref]));
    const hostOf = new Map(postgres.map((p) => [p.name, p.host]));
    return refs.map((fork, i) => {
        const key = `sparks:forks[${i}].source`;
        const visited = new Set<string>([fork.name]);
        let current = fork.ref;
        while (!hostOf.has(current)) {
            if (current === "") return { name: fork.name, source: fork.ref, host: "" };
            if (visited.has(current)) {
                problems.add(key, `${show(fork.ref)} leads to a cycle of forks`);
                return { name: fork.name, source: fork.ref, host: "" };
            }
            const next = sourceOf.get(current);
            if (next === undefined) {
                // Only the fork that names the missing source reports it, not its descendants.
                if (current === fork.ref) problems.add(key, `${show(current)} is not an instance in sparks:postgres or a fork in sparks:forks`);
                return { name: fork.name, source: fork.ref, host: "" };
            }
            visited.add(current);
            current = next;
        }
        return { name: fork.name, source: fork.ref, host: hostOf.get(current) ?? "" };
    });
}

function parseSkillsRepo(value: unknown, problems: Problems): SkillsRepoSpec | undefined {
    const obj = asObject(value, "sparks:skillsRepo", problems);
    if (obj === undefined) return undefined;
    const f = new Fields(obj, "sparks:skillsRepo", problems, ["host", "port"]);
    return { host: f.string("host", NAME) ?? "", port: f.integer("port", 1, 65535, 8080, "a TCP port") };
}

/**
 * Validates the `sparks:` config. `raw` maps full keys ("sparks:hosts") to parsed values, as
 * `pulumi config` stores them. Returns the typed fleet, or every problem found.
 */
export function parseFleetConfig(raw: Record<string, unknown>, env: ConfigEnvironment): { fleet?: FleetConfig; problems: string[] } {
    const problems = new Problems();
    const values: Obj = {};
    for (const [fullKey, value] of Object.entries(raw)) {
        const [namespace, key] = fullKey.split(":", 2);
        if (namespace === NAMESPACE) {
            if (TOP_LEVEL_KEYS.includes(key)) values[key] = value;
            else problems.add(fullKey, `unknown key (known: ${TOP_LEVEL_KEYS.map((k) => `sparks:${k}`).join(", ")})`);
        } else if (!OTHER_NAMESPACES.includes(namespace)) {
            problems.add(fullKey, `unknown config namespace ${show(namespace)} (Sparks settings go under "sparks:")`);
        }
    }

    const ssh = parseSsh(values.ssh, problems);
    const pool = parsePool(values.pool, "sparks:pool", problems);
    const hosts = parseHosts(values.hosts, ssh, pool, env, problems);
    const pg = parsePg(values.pg, problems);
    const postgres = parseNamedRefs(values.postgres, "sparks:postgres", "host", problems).map((r) => ({ name: r.name, host: r.ref }));
    const forkRefs = parseNamedRefs(values.forks, "sparks:forks", "source", problems);
    const devContainers = parseNamedRefs(values.devContainers, "sparks:devContainers", "host", problems).map((r) => ({ name: r.name, host: r.ref }));
    const skillsRepo = parseSkillsRepo(values.skillsRepo, problems);

    checkUnique(hosts.map((h, i) => ({ name: h.name, key: `sparks:hosts[${i}].name` })), problems);
    checkUnique(hosts.map((h, i) => ({ name: `${h.address}:${h.port}`, key: `sparks:hosts[${i}].address` })), problems);
    // Instances and forks share one namespace: each is a spark-pg instance with its own URI.
    checkUnique([
        ...postgres.map((p, i) => ({ name: p.name, key: `sparks:postgres[${i}].name` })),
        ...forkRefs.map((f, i) => ({ name: f.name, key: `sparks:forks[${i}].name` })),
    ], problems);
    checkUnique(devContainers.map((d, i) => ({ name: d.name, key: `sparks:devContainers[${i}].name` })), problems);
    postgres.forEach((p, i) => checkHostRef(p.host, `sparks:postgres[${i}].host`, hosts, problems));
    devContainers.forEach((d, i) => checkHostRef(d.host, `sparks:devContainers[${i}].host`, hosts, problems));
    if (skillsRepo) checkHostRef(skillsRepo.host, "sparks:skillsRepo.host", hosts, problems);
    const forks = resolveForks(forkRefs, postgres, problems);

    // Declared in the schema so stack files can be written against it, but not deployable yet:
    // refusing them is better than silently deploying nothing.
    if (devContainers.length > 0) problems.add("sparks:devContainers", "dev containers are not deployable yet; remove this key for now");
    if (skillsRepo !== undefined) problems.add("sparks:skillsRepo", "the skills repo is not deployable yet; remove this key for now");

    const hasHosts = hosts.length > 0;
    const keySources = [values.sshPrivateKey !== undefined, ssh.privateKeyFile !== undefined, ssh.agent].filter(Boolean).length;
    if (hasHosts && keySources !== 1) {
        problems.add("sparks:ssh", "needs exactly one way to log in: sparks:sshPrivateKey (a secret), ssh.privateKeyFile or ssh.agent: true");
    }
    if (ssh.privateKeyFile !== undefined && env.readFile(path.join(env.projectDir, ssh.privateKeyFile)) === undefined) {
        problems.add("sparks:ssh.privateKeyFile", `${show(ssh.privateKeyFile)} does not exist (for the lab: run lab/sparks-lab up)`);
    }

    if (problems.list.length > 0) return { problems: problems.list };
    return { fleet: { ssh, hosts, pg, postgres, forks, devContainers, skillsRepo }, problems: [] };
}

/** Pulumi hands every value over as a string; structured ones are JSON. */
function decodeConfigValue(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}

function readFileIfExists(file: string): string | undefined {
    try {
        return fs.readFileSync(file, "utf8");
    } catch {
        return undefined;
    }
}

/** The SSH private key as a Pulumi secret, or undefined when the ssh agent is used. */
export type SshKey = pulumi.Output<string> | undefined;

export interface LoadedFleet extends FleetConfig {
    sshPrivateKey: SshKey;
}

// The runtime knows which keys were stored encrypted, but does not declare it in its types.
const isConfigSecret = (pulumiRuntimeConfig as unknown as { isConfigSecret(key: string): boolean }).isConfigSecret;

/** Reads and validates the stack config; fails the run with every problem before any resource exists. */
export function loadFleetConfig(): LoadedFleet {
    const raw = Object.fromEntries(
        Object.entries(pulumi.runtime.allConfig()).map(([key, text]) => [key, decodeConfigValue(text)]),
    );
    const env = { projectDir: process.cwd(), readFile: readFileIfExists };
    const { fleet, problems } = parseFleetConfig(raw, env);
    const secretKey = `${NAMESPACE}:sshPrivateKey`;
    if (raw[secretKey] !== undefined && !isConfigSecret(secretKey)) {
        problems.push(`${secretKey}: is stored in plain text; set it with \`pulumi config set --secret ${secretKey} < keyfile\``);
    }
    if (fleet === undefined || problems.length > 0) {
        throw new pulumi.RunError(`invalid stack config, ${problems.length} problem(s):\n  ${problems.join("\n  ")}`);
    }
    const config = new pulumi.Config(NAMESPACE);
    let sshPrivateKey: SshKey;
    if (raw[secretKey] !== undefined) sshPrivateKey = config.requireSecret("sshPrivateKey");
    else if (fleet.ssh.privateKeyFile !== undefined) {
        sshPrivateKey = pulumi.secret(readFileIfExists(path.join(env.projectDir, fleet.ssh.privateKeyFile)) ?? "");
    }
    return { ...fleet, sshPrivateKey };
}
