// The stack config schema for the whole Sparks fleet, and the only reader of pulumi.Config.
//
// Every value from a stack file passes through here before any resource exists. Problems are
// collected, not thrown one at a time, so a bad stack file gets one line per problem, each naming
// the config key and the value. Names that end up in host paths, unit names or command lines are
// held to NAME_PATTERN, so nothing downstream has to wonder about quoting them. Messages never
// echo a secret or anything that looks like key material: they end up in logs and CI output.
import * as net from "net";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as pulumiRuntimeConfig from "@pulumi/pulumi/runtime/config";
import { readFileIfExists } from "./files";
import { LAB_PASSPHRASE, secretsUnderLabPassphrase } from "./identity";

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
    /** Attempts to reach a host's sshd before giving up, with exponential backoff (each wait capped). @default 6 */
    connectAttempts: number;
}

/** The btrfs pool every Sparks host keeps its data on. */
export interface PoolSettings {
    /** A whole blank disk. Setup refuses a disk that holds any filesystem but a Sparks pool. */
    device: string;
    /** A directory strictly under /srv, /mnt or /data: never over a system directory. @default "/srv/sparks" */
    mountPoint: string;
    /** Wipe the disk when the host leaves the config. Takes effect on the `up` after it is set. @default false */
    wipeOnDelete: boolean;
}

export interface HostSpec {
    name: string;
    /** An IPv4 or IPv6 address (no zone) or a lower-case DNS name; in a URI, use uriHost(address). */
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
    /** CIDRs that pg_hba admits over the network (scram-sha-256); loopback is always admitted. World-open
     *  prefixes (shorter than /8 for IPv4, /16 for IPv6) need `sparks:pg.allowWorld: true`. @default [] */
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

/** The local lab a dev stack deploys to (lab/sparks-lab); a stack with it is a lab stack. */
export interface LabSpec {
    /** How many lab hosts (spark-1 ... spark-N) the stack's hosts live on. */
    hosts: number;
}

export interface FleetConfig {
    /** Set on lab stacks only: the one kind of stack whose secrets may be under LAB_PASSPHRASE. */
    lab?: LabSpec;
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
    /** Whether this stack's secrets are encrypted under LAB_PASSPHRASE (see secretsUnderLabPassphrase). */
    secretsUnderLabPassphrase?: boolean;
}

// Top-level keys under `sparks:`. `sshPrivateKey` must be a Pulumi secret: loadFleetConfig reads it.
const TOP_LEVEL_KEYS = ["lab", "ssh", "sshPrivateKey", "pool", "hosts", "pg", "postgres", "forks", "devContainers", "skillsRepo"];
// Providers' own settings live in their namespaces; anything else is most likely a typo.
const OTHER_NAMESPACES = ["pulumi", "command", "random"];
const SSH_PRIVATE_KEY = `${NAMESPACE}:sshPrivateKey`;

const DEFAULT_MOUNT_POINT = "/srv/sparks";
/** The pool is mounted strictly below one of these, so never over (or above) a system directory. */
const POOL_PARENTS = ["/srv", "/mnt", "/data"];
const HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
const HOST_KEY_PATTERN = new RegExp(`^(${HOST_KEY_TYPES.join("|")}) [A-Za-z0-9+/]+={0,2}$`);
const DNS_LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
const DNS_NAME_PATTERN = new RegExp(`^(?=.{1,253}$)${DNS_LABEL}(\\.${DNS_LABEL})*$`);
// Parts never start with '.', so no '.' or '..'; '.' and ':' inside allow /dev/disk/by-id and by-path names.
const DEVICE_PATTERN = /^\/dev(\/[A-Za-z0-9_][A-Za-z0-9_.:-]*)+$/;
const ABSOLUTE_PATH_PATTERN = /^(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/;
const RELATIVE_FILE_PATTERN = /^[A-Za-z0-9_.][A-Za-z0-9_./-]*$/;
// A PEM or OpenSSH private key: base64 (and a legacy PEM's "Proc-Type:" headers) between matching lines.
const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\s+[A-Za-z0-9+/][A-Za-z0-9+/=:,\s-]*?-----END \1PRIVATE KEY-----/;
/** A pg.allow prefix shorter than this opens Postgres to the world, so it needs sparks:pg.allowWorld. */
const WORLD_OPEN_BELOW = { 4: 8, 6: 16 };

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

/** What a value looks like, if it may be key material: a private key, or a base64 run that is no public key. */
function keyMaterial(text: string): string | undefined {
    if (text.includes("PRIVATE KEY")) return "a private key";
    const blobs = text.match(/[A-Za-z0-9+/]{40,}={0,2}/g) ?? [];
    return blobs.some((blob) => !wellFormedPublicKey(sshFields(blob))) ? "key material" : undefined;
}

/** The fields of an SSH wire-format blob (RFC 4251 strings), if it is canonical base64 made only of them. */
function sshFields(base64: string): Buffer[] | undefined {
    const blob = Buffer.from(base64, "base64");
    if (blob.length === 0 || blob.toString("base64") !== base64) return undefined;
    const fields: Buffer[] = [];
    for (let at = 0; at < blob.length;) {
        if (at + 4 > blob.length) return undefined;
        const end = at + 4 + blob.readUInt32BE(at);
        if (end > blob.length) return undefined;
        fields.push(blob.subarray(at + 4, end));
        at = end;
    }
    return fields;
}

/** Whether `fields` are a whole public key of the type their first field names (RFC 8709, 5656, 4253). */
function wellFormedPublicKey(fields: Buffer[] | undefined): boolean {
    if (fields === undefined || fields.length === 0) return false;
    const type = fields[0].toString("latin1");
    const curve = /^ecdsa-sha2-(nistp256|nistp384|nistp521)$/.exec(type)?.[1];
    if (type === "ssh-ed25519") return fields.length === 2 && fields[1].length === 32;
    if (curve !== undefined) {
        // The curve point, uncompressed: 0x04, then x and y.
        const pointLength = { nistp256: 65, nistp384: 97, nistp521: 133 }[curve];
        return fields.length === 3 && fields[1].toString("latin1") === curve && fields[2].length === pointLength && fields[2][0] === 4;
    }
    // e and n: 1024 to 16384-bit moduli.
    if (type === "ssh-rsa") return fields.length === 3 && fields[1].length >= 1 && fields[1].length <= 8 && fields[2].length >= 128 && fields[2].length <= 2049;
    return false;
}

/** Why a host key's base64 data is not a key of its stated type, or undefined if it is one. */
function keyDataProblem(type: string, base64: string): string | undefined {
    const fields = sshFields(base64);
    if (!wellFormedPublicKey(fields)) return `its key data is not a well-formed ${type} key`;
    const holds = fields![0].toString("latin1");
    return holds === type ? undefined : `its key data is an ${holds} key, not ${type}`;
}

/** A rule for a string value, how to name it in an error, and optionally why a value missed it. */
interface Check {
    test(text: string): boolean;
    describe: string;
    why?(text: string): string | undefined;
}

const matches = (pattern: RegExp, describe: string): Check => ({ test: (text) => pattern.test(text), describe });

type Obj = Record<string, unknown>;

/** Reads fields of one config object, reporting wrong types and unknown fields against `key`. */
class Fields {
    constructor(
        private readonly obj: Obj,
        readonly key: string,
        readonly problems: Problems,
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
        const key = `${this.key}.${field}`;
        if (value === undefined) {
            if (fallback === undefined) this.problems.add(key, "is required");
            return fallback;
        }
        if (typeof value !== "string" || !check.test(value)) {
            const why = typeof value === "string" ? check.why?.(value) : undefined;
            this.problems.add(key, `${this.problems.show(key, value)} is not ${check.describe}${why ? ` (${why})` : ""}`);
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
            const key = `${this.key}.${field}`;
            this.problems.add(key, `${this.problems.show(key, value)} is not ${describe} (${min}-${max})`);
            return fallback;
        }
        return value;
    }

    boolean(field: string, fallback: boolean): boolean {
        const value = this.obj[field];
        if (value === undefined) return fallback;
        if (typeof value !== "boolean") {
            const key = `${this.key}.${field}`;
            this.problems.add(key, `${this.problems.show(key, value)} is not true or false`);
            return fallback;
        }
        return value;
    }

    list(field: string): unknown[] {
        return asList(this.obj[field], `${this.key}.${field}`, this.problems);
    }

    /**
     * A file named relative to the project, and its text. The name passes every check before the
     * file is read: a refused name is never read, so an error cannot tell whether it exists.
     */
    projectFile(field: string, env: ConfigEnvironment, ifMissing: string): { file: string; text: string } | undefined {
        const key = `${this.key}.${field}`;
        const file = this.optionalString(field, FILE);
        if (file === undefined || !FILE.test(file)) return undefined;
        if (file.split("/").includes("..")) {
            this.problems.add(key, `${this.problems.show(key, file)} must stay inside the project (no '..')`);
            return undefined;
        }
        const text = env.readFile(path.join(env.projectDir, file));
        if (text === undefined) {
            this.problems.add(key, `${this.problems.show(key, file)} does not exist (${ifMissing})`);
            return undefined;
        }
        return { file, text };
    }
}

function asObject(value: unknown, key: string, problems: Problems): Obj | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
        problems.add(key, `${problems.show(key, value)} is not an object`);
        return undefined;
    }
    return value as Obj;
}

function asList(value: unknown, key: string, problems: Problems): unknown[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
        problems.add(key, `${problems.show(key, value)} is not a list`);
        return [];
    }
    return value;
}

const NAME = matches(NAME_PATTERN, "a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)");
const UNIX_USER = matches(/^[a-z_][a-z0-9_-]{0,31}$/, "a valid Unix user name");
const DEVICE = matches(DEVICE_PATTERN, "a device path under /dev");
const MOUNT_POINT: Check = {
    test: (text) => ABSOLUTE_PATH_PATTERN.test(text) && POOL_PARENTS.some((parent) => text.startsWith(`${parent}/`)),
    describe: "a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')",
};
const FILE = matches(RELATIVE_FILE_PATTERN, "a file path (letters, digits, _ . / -)");
const ANY_STRING = matches(/^[\s\S]*$/, "a string");
const PORT_RANGE = matches(/^\d{1,5}-\d{1,5}$/, "a port range like \"5432-5499\"");

type IpFamily = 4 | 6;

/** An IP address as a number, for comparing spellings and masking; undefined for anything else. */
function ipValue(text: string): { family: IpFamily; value: bigint } | undefined {
    if (net.isIPv4(text)) return { family: 4, value: text.split(".").reduce((v, part) => (v << 8n) | BigInt(part), 0n) };
    if (!net.isIPv6(text) || text.includes("%")) return undefined;
    // An IPv4 tail ("::ffff:10.0.0.1") becomes two groups; "::" stands for as many zero groups as are missing.
    const v4 = /\d+\.\d+\.\d+\.\d+$/.exec(text);
    const v4Value = v4 ? ipValue(v4[0])!.value : 0n;
    const hex = v4 ? `${text.slice(0, v4.index)}${(v4Value >> 16n).toString(16)}:${(v4Value & 0xffffn).toString(16)}` : text;
    const [head, tail] = hex.split("::");
    const groups = (part: string) => (part === "" ? [] : part.split(":"));
    const all = tail === undefined ? groups(head) : [...groups(head), ...Array<string>(8 - groups(head).length - groups(tail).length).fill("0"), ...groups(tail)];
    return { family: 6, value: all.reduce((v, group) => (v << 16n) | BigInt(parseInt(group, 16)), 0n) };
}

function formatIp(family: IpFamily, value: bigint): string {
    if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
    const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => ((value >> shift) & 0xffffn).toString(16));
    // The platform's own formatting compresses the longest run of zero groups.
    return new net.SocketAddress({ address: groups.join(":"), family: "ipv6" }).address;
}

/** What makes two spellings of a host's address the same: "::1" is "0:0:0:0:0:0:0:1", "::ffff:10.0.0.1" is "10.0.0.1". */
function addressIdentity(address: string): string {
    const ip = ipValue(address);
    if (ip === undefined) return address;
    if (ip.family === 6 && ip.value >> 32n === 0xffffn) return `4:${ip.value & 0xffffffffn}`;
    return `${ip.family}:${ip.value}`;
}

/** An address as the host part of a URI: IPv6 in brackets ("[fd00::1]"), IPv4 and DNS names as they are. */
export function uriHost(address: string): string {
    return net.isIPv6(address) ? `[${address}]` : address;
}

const isDnsName = (text: string) => DNS_NAME_PATTERN.test(text) && !/^\d+$/.test(text.split(".").pop()!);

const ADDRESS: Check = {
    test: (text) => {
        const ip = ipValue(text);
        return ip !== undefined ? ip.value !== 0n : isDnsName(text);
    },
    describe: "an IP address or DNS name",
    why: (text) => {
        if (ipValue(text)?.value === 0n) return "it is the unspecified address, which names no host";
        if (text.includes("%") && net.isIPv6(text)) return "a zone index such as %eth0 is not accepted";
        if (/^[\d.]+$/.test(text)) return "an IPv4 address is four numbers 0-255, without leading zeros";
        if (/^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/.test(text)) return "not a valid IPv6 address";
        if (isDnsName(text.toLowerCase())) return "write DNS names in lower case";
        return undefined;
    },
};

/** A CIDR as its network number and prefix length, if it is spelled strictly ("/24", not "/024"). */
function parseCidr(text: string): { family: IpFamily; value: bigint; bits: number } | undefined {
    const [address, bits, extra] = text.split("/");
    const ip = ipValue(address);
    if (extra !== undefined || bits === undefined || ip === undefined || !/^(0|[1-9]\d{0,2})$/.test(bits)) return undefined;
    return Number(bits) <= (ip.family === 4 ? 32 : 128) ? { ...ip, bits: Number(bits) } : undefined;
}

/** The CIDR's network with every bit past the prefix cleared. */
function networkOf(cidr: { family: IpFamily; value: bigint; bits: number }): bigint {
    const width = BigInt(cidr.family === 4 ? 32 : 128);
    const hostBits = width - BigInt(cidr.bits);
    return (cidr.value >> hostBits) << hostBits;
}

const CIDR: Check = {
    test: (text) => {
        const cidr = parseCidr(text);
        return cidr !== undefined && networkOf(cidr) === cidr.value;
    },
    describe: "a CIDR like 10.0.0.0/24",
    why: (text) => {
        const cidr = parseCidr(text);
        if (cidr === undefined) return undefined;
        return `bits are set past the /${cidr.bits} prefix: the network is ${formatIp(cidr.family, networkOf(cidr))}/${cidr.bits}`;
    },
};

/** "1 fork", "2 forks". */
const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

function parseSsh(value: unknown, env: ConfigEnvironment, problems: Problems): SshSettings {
    const obj = asObject(value, "sparks:ssh", problems) ?? {};
    const f = new Fields(obj, "sparks:ssh", problems, ["user", "privateKeyFile", "agent", "connectAttempts"]);
    const keyFile = f.projectFile("privateKeyFile", env, "for the lab: run lab/sparks-lab up");
    if (keyFile !== undefined && !PRIVATE_KEY_BLOCK.test(keyFile.text)) {
        problems.add("sparks:ssh.privateKeyFile", `${problems.show("sparks:ssh.privateKeyFile", keyFile.file)} holds no private key ` +
            `(no "-----BEGIN ... PRIVATE KEY-----" block)`);
    }
    return {
        user: f.string("user", UNIX_USER, "root") ?? "root",
        // Set even when refused, so it still counts as the way to log in; a refused one never reaches a fleet.
        privateKeyFile: f.has("privateKeyFile") ? obj.privateKeyFile as string : undefined,
        agent: f.boolean("agent", false),
        connectAttempts: f.integer("connectAttempts", 1, 20, 6, "a number of attempts"),
    };
}

function parseSshPrivateKey(value: unknown, secretKeys: readonly string[], problems: Problems): void {
    if (value === undefined) return;
    const setIt = `pulumi config set --secret ${SSH_PRIVATE_KEY} < keyfile`;
    if (!secretKeys.includes(SSH_PRIVATE_KEY)) {
        problems.add(SSH_PRIVATE_KEY, `is stored in plain text; set it with \`${setIt}\``);
    }
    if (typeof value === "string" && value.trim() === "") {
        problems.add(SSH_PRIVATE_KEY, `is empty (store the key: ${setIt})`);
    } else if (typeof value !== "string" || !PRIVATE_KEY_BLOCK.test(value)) {
        problems.add(SSH_PRIVATE_KEY, `${problems.show(SSH_PRIVATE_KEY, value)} is not a private key (no "-----BEGIN ... PRIVATE KEY-----" block)`);
    }
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

function parseHostKey(f: Fields, env: ConfigEnvironment): string {
    const problems = f.problems;
    if (f.has("hostKey") === f.has("hostKeyFile")) {
        problems.add(f.key, "needs exactly one of hostKey (the pinned public host key) or hostKeyFile");
        return "";
    }
    const inline = f.optionalString("hostKey", ANY_STRING);
    const file = f.projectFile("hostKeyFile", env, "for the lab's hosts: run lab/sparks-lab up");
    const text = file?.text ?? inline;
    if (text === undefined) return "";
    const key = file === undefined ? `${f.key}.hostKey` : `${f.key}.hostKeyFile`;
    const refuse = (why?: string) => {
        problems.add(key, `${problems.show(key, file?.file ?? inline)} is not an SSH public host key${why ? ` (${why})` : ' ("ssh-ed25519 AAAA...")'}`);
        return "";
    };
    const lines = text.trim().split(/\r?\n/);
    // Keep "type base64" and drop the comment: the comment is not part of the key.
    const [type, data] = lines[0].trim().split(/\s+/);
    if (data === undefined && HOST_KEY_TYPES.includes(type)) {
        return refuse(`no key data after the type; pin the whole line of the server's host key file, e.g. /etc/ssh/ssh_host_ed25519_key.pub`);
    }
    const pinned = `${type} ${data}`;
    if (!HOST_KEY_PATTERN.test(pinned)) return refuse();
    if (lines.length > 1) return refuse(`it has ${lines.length} lines; pin exactly one key`);
    if (type === "ssh-rsa") {
        // pulumi-command (upstream, and our stand-in with it) asks for a pinned RSA key's SHA-1
        // "ssh-rsa" signatures only, which OpenSSH 8.8 and later no longer offer: it could not connect.
        problems.add(key, `${problems.show(key, file?.file ?? inline)} is an RSA host key, which the command provider verifies only with SHA-1 ` +
            `signatures ("ssh-rsa") that OpenSSH 8.8 and later refuse; pin the host's ed25519 or ECDSA key instead`);
        return "";
    }
    const dataProblem = keyDataProblem(type, data);
    return dataProblem === undefined ? pinned : refuse(dataProblem);
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
            hostKey: parseHostKey(f, env),
            pool: hostPool ?? { device: "", mountPoint: DEFAULT_MOUNT_POINT, wipeOnDelete: false },
        }];
    });
}

function parsePg(value: unknown, problems: Problems): PgSettings {
    const obj = asObject(value, "sparks:pg", problems) ?? {};
    const f = new Fields(obj, "sparks:pg", problems, ["ports", "listen", "allow", "allowWorld", "protectInstances"]);
    let ports = { first: 5432, last: 5499 };
    const range = f.optionalString("ports", PORT_RANGE);
    if (range !== undefined && PORT_RANGE.test(range)) {
        const [first, last] = range.split("-").map(Number);
        if (first < 1024 || last > 65535 || first > last) {
            problems.add("sparks:pg.ports", `${problems.show("sparks:pg.ports", range)} is not a port range within 1024-65535, low to high`);
        } else {
            ports = { first, last };
        }
    }
    const listen = f.has("listen") ? f.list("listen") : ["loopback", "private"];
    listen.forEach((item, i) => {
        if (item !== "loopback" && item !== "private") {
            problems.add(`sparks:pg.listen[${i}]`, `${problems.show(`sparks:pg.listen[${i}]`, item)} is not "loopback" or "private"`);
        }
    });
    const allowWorld = f.boolean("allowWorld", false);
    const allow = f.list("allow");
    allow.forEach((item, i) => {
        const key = `sparks:pg.allow[${i}]`;
        if (typeof item !== "string" || !CIDR.test(item)) {
            const why = typeof item === "string" ? CIDR.why!(item) : undefined;
            problems.add(key, `${problems.show(key, item)} is not ${CIDR.describe}${why ? ` (${why})` : ""}`);
            return;
        }
        const cidr = parseCidr(item)!;
        if (cidr.bits < WORLD_OPEN_BELOW[cidr.family] && !allowWorld) {
            problems.add(key, `${problems.show(key, item)} is open to the world (a prefix shorter than /${WORLD_OPEN_BELOW[cidr.family]}: ` +
                "any address in it may try password logins to every instance and fork; set sparks:pg.allowWorld: true if that is meant)");
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
        if (first !== undefined) problems.add(key, `${problems.show(key, name)} is already used by ${first}`);
        else seen.set(name, key);
    }
}

/** Two hosts at one address and port are one server, however the address is spelled. */
function checkUniqueAddresses(hosts: HostSpec[], problems: Problems): void {
    const seen = new Map<string, number>();
    hosts.forEach((host, i) => {
        if (!ADDRESS.test(host.address)) return;
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

function checkHostRef(host: string, key: string, hosts: HostSpec[], problems: Problems): void {
    if (host !== "" && !hosts.some((h) => h.name === host)) {
        problems.add(key, `${problems.show(key, host)} is not a host in sparks:hosts`);
    }
}

/** Every instance and fork holds a port of its host's range for as long as it exists. */
function checkPortRange(pg: PgSettings, hosts: HostSpec[], postgres: PgInstanceSpec[], forks: PgForkSpec[], problems: Problems): void {
    const size = pg.ports.last - pg.ports.first + 1;
    for (const host of new Set(hosts.map((h) => h.name))) {
        const instances = postgres.filter((p) => p.host === host).length;
        const forksHere = forks.filter((f) => f.host === host).length;
        if (host !== "" && instances + forksHere > size) {
            problems.add("sparks:pg.ports", `${problems.show("sparks:pg.ports", `${pg.ports.first}-${pg.ports.last}`)} has ${count(size, "port")}, ` +
                `but host ${host} needs ${instances + forksHere} (${count(instances, "instance")} and ${count(forksHere, "fork")}); widen the range`);
        }
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
                problems.add(key, `${problems.show(key, fork.ref)} leads to a cycle of forks`);
                return { name: fork.name, source: fork.ref, host: "" };
            }
            const next = sourceOf.get(current);
            if (next === undefined) {
                // Only the fork that names the missing source reports it, not its descendants.
                if (current === fork.ref) problems.add(key, `${problems.show(key, current)} is not an instance in sparks:postgres or a fork in sparks:forks`);
                return { name: fork.name, source: fork.ref, host: "" };
            }
            visited.add(current);
            current = next;
        }
        return { name: fork.name, source: fork.ref, host: hostOf.get(current) ?? "" };
    });
}

function parseLab(value: unknown, problems: Problems): LabSpec | undefined {
    const obj = asObject(value, "sparks:lab", problems);
    if (obj === undefined) return undefined;
    const f = new Fields(obj, "sparks:lab", problems, ["hosts"]);
    return { hosts: f.integer("hosts", 1, 100, 1, "a number of lab hosts") };
}

function parseSkillsRepo(value: unknown, problems: Problems): SkillsRepoSpec | undefined {
    const obj = asObject(value, "sparks:skillsRepo", problems);
    if (obj === undefined) return undefined;
    const f = new Fields(obj, "sparks:skillsRepo", problems, ["host", "port"]);
    return { host: f.string("host", NAME) ?? "", port: f.integer("port", 1, 65535, 8080, "a TCP port") };
}

/**
 * Validates the `sparks:` config. `raw` maps full keys ("sparks:hosts") to parsed values, as
 * `pulumi config` stores them; `secretKeys` are the keys stored as secrets, whose values no message
 * shows (sparks:sshPrivateKey is always treated as one). Returns the typed fleet, or every problem found.
 */
export function parseFleetConfig(raw: Record<string, unknown>, env: ConfigEnvironment, secretKeys: readonly string[] = []): { fleet?: FleetConfig; problems: string[] } {
    const problems = new Problems(secretKeys);
    const values: Obj = {};
    for (const [fullKey, value] of Object.entries(raw)) {
        // Everything after the first colon is the key: "sparks:hosts:extra" is an unknown key, not
        // sparks:hosts. (The Pulumi CLI refuses such keys, but PULUMI_CONFIG can still carry them.)
        const colon = fullKey.indexOf(":");
        const namespace = colon < 0 ? fullKey : fullKey.slice(0, colon);
        const key = fullKey.slice(colon + 1);
        if (namespace === NAMESPACE) {
            if (TOP_LEVEL_KEYS.includes(key)) values[key] = value;
            else problems.add(fullKey, `unknown key (known: ${TOP_LEVEL_KEYS.map((k) => `sparks:${k}`).join(", ")})`);
        } else if (!OTHER_NAMESPACES.includes(namespace)) {
            problems.add(fullKey, `unknown config namespace ${JSON.stringify(namespace)} (Sparks settings go under "sparks:")`);
        }
    }

    const lab = parseLab(values.lab, problems);
    if (env.secretsUnderLabPassphrase && lab === undefined) {
        problems.add("sparks:lab", `is not set, but this stack's secrets are encrypted under the public lab passphrase ("${LAB_PASSPHRASE}", ` +
            "which toolchain/env.sh sets when no other is given): only a lab stack may use it. Set your own PULUMI_CONFIG_PASSPHRASE " +
            "(or PULUMI_CONFIG_PASSPHRASE_FILE, or a KMS secrets provider) before `pulumi stack init`, or move an existing stack " +
            "with `pulumi stack change-secrets-provider`");
    }
    const ssh = parseSsh(values.ssh, env, problems);
    parseSshPrivateKey(values.sshPrivateKey, secretKeys, problems);
    const pool = parsePool(values.pool, "sparks:pool", problems);
    const hosts = parseHosts(values.hosts, ssh, pool, env, problems);
    const pg = parsePg(values.pg, problems);
    const postgres = parseNamedRefs(values.postgres, "sparks:postgres", "host", problems).map((r) => ({ name: r.name, host: r.ref }));
    const forkRefs = parseNamedRefs(values.forks, "sparks:forks", "source", problems);
    const devContainers = parseNamedRefs(values.devContainers, "sparks:devContainers", "host", problems).map((r) => ({ name: r.name, host: r.ref }));
    const skillsRepo = parseSkillsRepo(values.skillsRepo, problems);

    checkUnique(hosts.map((h, i) => ({ name: h.name, key: `sparks:hosts[${i}].name` })), problems);
    checkUniqueAddresses(hosts, problems);
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
    if (!problems.has("sparks:pg.ports")) checkPortRange(pg, hosts, postgres, forks, problems);

    // Declared in the schema so stack files can be written against it, but not deployable yet:
    // refusing them is better than silently deploying nothing.
    if (devContainers.length > 0) problems.add("sparks:devContainers", "dev containers are not deployable yet; remove this key for now");
    if (skillsRepo !== undefined) problems.add("sparks:skillsRepo", "the skills repo is not deployable yet; remove this key for now");

    const hasHosts = hosts.length > 0;
    const keySources = [values.sshPrivateKey !== undefined, ssh.privateKeyFile !== undefined, ssh.agent].filter(Boolean).length;
    if (hasHosts && keySources !== 1) {
        problems.add("sparks:ssh", "needs exactly one way to log in: sparks:sshPrivateKey (a secret), ssh.privateKeyFile or ssh.agent: true");
    }

    if (problems.list.length > 0) return { problems: problems.list };
    return { fleet: { lab, ssh, hosts, pg, postgres, forks, devContainers, skillsRepo }, problems: [] };
}

/** Pulumi hands every value over as a string; structured ones are JSON. */
function decodeConfigValue(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return text;
    }
}


/** The SSH private key as a Pulumi secret, or undefined when the ssh agent is used. */
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
