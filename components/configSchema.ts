// The stack config, declared once (zod): the shape and value rules of every `sparks:` key, the
// types the program reads, and the JSON Schema of a whole Pulumi.<stack>.yaml that editors and CI
// check stack files with (scripts/config-schema writes it to STACK_FILE_SCHEMA). What one value
// cannot tell by itself (duplicates, references, files on disk, the lab's rules) is config.ts's.
//
// Each refusal is a message said of the value: config.ts prints `KEY: VALUE <message>`, so a
// message here never holds the value (it may be a secret). Patterns are plain ECMA regexes without
// flags: they are the JSON Schema's `pattern`s too.
import * as net from "net";
import { z } from "zod";

export const NAMESPACE = "sparks";
/** Providers' own settings live in their namespaces; anything else is most likely a typo. */
export const OTHER_NAMESPACES = ["pulumi", "command", "random"];
export const SSH_PRIVATE_KEY = `${NAMESPACE}:sshPrivateKey`;
/** Where scripts/config-schema writes the JSON Schema, relative to the project. */
export const STACK_FILE_SCHEMA = "schema/stack-config.schema.json";

/** Lower-case letters, digits and inner dashes, 2-32 long: safe as a path part, unit name and argv. */
export const NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;

/** A pool's settings where neither sparks:pool nor the host's own pool sets them. */
export const POOL_DEFAULTS = { mountPoint: "/srv/sparks", wipeOnDelete: false };
const HOST_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
const HOST_KEY_PATTERN = new RegExp(`^(${HOST_KEY_TYPES.join("|")}) [A-Za-z0-9+/]+={0,2}$`);
// One line "type base64 [comment]" of a type that can be pinned (not RSA: see readHostKey).
const HOST_KEY_LINE = new RegExp(`^\\s*(${HOST_KEY_TYPES.filter((t) => t !== "ssh-rsa").join("|")})[^\\S\\n]+[A-Za-z0-9+/]+={0,2}([^\\S\\n][^\\n]*)?\\s*$`);
// A PEM or OpenSSH private key: base64 (and a legacy PEM's "Proc-Type:" headers) between matching lines.
export const PRIVATE_KEY_BLOCK = /-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\s+[A-Za-z0-9+/][A-Za-z0-9+/=:,\s-]*?-----END \1PRIVATE KEY-----/;
export const NOT_A_PRIVATE_KEY = 'is not a private key (no "-----BEGIN ... PRIVATE KEY-----" block)';
/** A pg.allow prefix shorter than this opens Postgres to the world, so it needs sparks:pg.allowWorld. */
export const WORLD_OPEN_BELOW = { 4: 8, 6: 16 };

// Addresses as ssh, glibc and URIs read them alike. IPv4: four numbers 0-255 without leading zeros
// (glibc reads "011" as octal). IPv6: RFC 3986's IPv6address (no zone): 8 groups, "::" standing for
// one or more zero groups, an IPv4 address as the last two. DNS: lower-case labels, the last not all
// digits (so no IPv4 look-alike). Never the unspecified address (only 0s, colons and dots), which
// names no host.
const IPV4_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const IPV4 = `${IPV4_OCTET}(\\.${IPV4_OCTET}){3}`;
const H16 = "[0-9A-Fa-f]{1,4}";
const LS32 = `(${H16}:${H16}|${IPV4})`;
// What may follow "::" when up to N groups precede it (N = index).
const AFTER_DOUBLE_COLON = [`(${H16}:){5}${LS32}`, `(${H16}:){4}${LS32}`, `(${H16}:){3}${LS32}`, `(${H16}:){2}${LS32}`, `${H16}:${LS32}`, LS32, H16, ""];
const IPV6 = [`(${H16}:){6}${LS32}`, ...AFTER_DOUBLE_COLON.map((after, n) => `${n === 0 ? "" : `((${H16}:){0,${n - 1}}${H16})?`}::${after}`)].join("|");
const DNS_LABEL = "[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?";
const DNS_NAME = `(?=.{1,253}$)(?!(.*\\.)?[0-9]+$)${DNS_LABEL}(\\.${DNS_LABEL})*`;
const ADDRESS_PATTERN = new RegExp(`^(?![0:.]*$)(${IPV4}|${IPV6}|${DNS_NAME})$`);
// Prefix lengths spelled strictly ("/24", not "/024").
const CIDR_PATTERN = new RegExp(`^(${IPV4}/(3[0-2]|[12]?[0-9])|(${IPV6})/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))$`);

/** The lab's machines (lab/sparks-lab): spark-1 ... spark-100, spark-K at 10.89.42.(10+K), port 22. */
const LAB_MACHINE_PATTERN = /^spark-([1-9][0-9]?|100)$/;
export const LAB_SSH_PORT = 22;

/** A value that looks like key material: a private key, or a base64 run that is no public key. */
export function keyMaterial(text: string): string | undefined {
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

const notAHostKey = (why?: string) => `is not an SSH public host key${why ? ` (${why})` : ' ("ssh-ed25519 AAAA...")'}`;

/** A host key as pinned ("type base64", the comment dropped), or why it cannot be, said of the value or file holding it. */
export function readHostKey(text: string): { pinned: string } | { problem: string } {
    const lines = text.trim().split(/\r?\n/);
    const [type, data] = lines[0].trim().split(/\s+/);
    if (data === undefined && HOST_KEY_TYPES.includes(type)) {
        return { problem: notAHostKey("no key data after the type; pin the whole line of the server's host key file, e.g. /etc/ssh/ssh_host_ed25519_key.pub") };
    }
    const pinned = `${type} ${data}`;
    if (!HOST_KEY_PATTERN.test(pinned)) return { problem: notAHostKey() };
    if (lines.length > 1) return { problem: notAHostKey(`it has ${lines.length} lines; pin exactly one key`) };
    if (type === "ssh-rsa") {
        // pulumi-command (upstream, and our stand-in with it) asks for a pinned RSA key's SHA-1
        // "ssh-rsa" signatures only, which OpenSSH 8.8 and later no longer offer: it could not connect.
        return {
            problem: `is an RSA host key, which the command provider verifies only with SHA-1 signatures ("ssh-rsa") that OpenSSH 8.8 ` +
                "and later refuse; pin the host's ed25519 or ECDSA key instead",
        };
    }
    const dataProblem = keyDataProblem(type, data);
    return dataProblem === undefined ? { pinned } : { problem: notAHostKey(dataProblem) };
}

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
export function addressIdentity(address: string): string {
    const ip = ipValue(address);
    if (ip === undefined) return address;
    if (ip.family === 6 && ip.value >> 32n === 0xffffn) return `4:${ip.value & 0xffffffffn}`;
    return `${ip.family}:${ip.value}`;
}

/** An address as the host part of a URI: IPv6 in brackets ("[fd00::1]"), IPv4 and DNS names as they are. */
export function uriHost(address: string): string {
    return net.isIPv6(address) ? `[${address}]` : address;
}

/** A CIDR as its address and prefix length, if it is one. */
export function parseCidr(text: string): { family: IpFamily; value: bigint; bits: number } | undefined {
    const [address, bits] = text.split("/");
    const ip = CIDR_PATTERN.test(text) ? ipValue(address) : undefined;
    return ip === undefined ? undefined : { ...ip, bits: Number(bits) };
}

/** The CIDR's network with every bit past the prefix cleared. */
function networkOf(cidr: { family: IpFamily; value: bigint; bits: number }): bigint {
    const width = BigInt(cidr.family === 4 ? 32 : 128);
    const hostBits = width - BigInt(cidr.bits);
    return (cidr.value >> hostBits) << hostBits;
}

/** The lab's address for lab machine `name` (spark-K: 10.89.42.(10+K)), if it is one. */
export function labAddress(name: string): string | undefined {
    const k = LAB_MACHINE_PATTERN.exec(name)?.[1];
    return k === undefined ? undefined : `10.89.42.${10 + Number(k)}`;
}

/** The message for a refused value: "is not <what>", and why when `why` can tell. */
function isNot(what: string, why?: (text: string) => string | undefined) {
    return (issue: { input?: unknown }) => {
        const reason = typeof issue.input === "string" ? why?.(issue.input) : undefined;
        return `is not ${what}${reason ? ` (${reason})` : ""}`;
    };
}

/** A string held to `pattern`, refused as "is not <what>". Checks added after it run only on a string that matched. */
const matching = (what: string, pattern: RegExp, why?: (text: string) => string | undefined) =>
    z.string({ error: isNot(what, why) }).regex(pattern, { abort: true });

const integer = (what: string, min: number, max: number) => z.int({ error: `is not ${what} (${min}-${max})` }).min(min).max(max);
const YesNo = z.boolean({ error: "is not true or false" });
const list = <T extends z.ZodType>(item: T) => z.array(item, { error: "is not a list" });

/** An object whose every field is declared: an unknown one is most likely a typo. */
function fields<S extends z.ZodRawShape>(shape: S, unknown = `unknown field (allowed: ${Object.keys(shape).join(", ")})`) {
    return z.strictObject(shape, { error: (issue) => (issue.code === "unrecognized_keys" ? unknown : "is not an object") });
}

const Name = matching("a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)", NAME_PATTERN)
    .describe("A name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter): it becomes paths, unit names and command arguments");
const HostName = Name.describe("A host's name in sparks:hosts");
const UnixUser = matching("a valid Unix user name", /^[a-z_][a-z0-9_-]{0,31}$/);
const Port = integer("a TCP port", 1, 65535);
// Parts never start with '.', so no '.' or '..'; '.' and ':' inside allow /dev/disk/by-id and by-path names.
const Device = matching("a device path under /dev", /^\/dev(\/[A-Za-z0-9_][A-Za-z0-9_.:-]*)+$/)
    .describe("The blank disk for the host's btrfs pool, under /dev (/dev/disk/by-id/... names work). Setup refuses a disk that holds any filesystem but a Sparks pool");
// Strictly below one of these, so never over (or above) a system directory.
const MountPoint = matching("a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')",
    /^\/(srv|mnt|data)(\/[A-Za-z0-9_][A-Za-z0-9_.-]*)+$/)
    .describe(`Where the pool is mounted: a directory strictly under /srv, /mnt or /data, written plainly (default ${POOL_DEFAULTS.mountPoint})`);
// Named relative to the project; a name with a '..' part is refused before anything reads it.
const ProjectFile = matching("a file path (letters, digits, _ . / -)", /^[A-Za-z0-9_.][A-Za-z0-9_./-]*$/)
    .regex(/^(?!(.*\/)?\.\.(\/|$))/, { error: "must stay inside the project (no '..')" });

const Address = matching("an IP address or DNS name", ADDRESS_PATTERN, (text) => {
    if (ipValue(text)?.value === 0n) return "it is the unspecified address, which names no host";
    if (text.includes("%") && net.isIPv6(text)) return "a zone index such as %eth0 is not accepted";
    if (/^[\d.]+$/.test(text)) return "an IPv4 address is four numbers 0-255, without leading zeros";
    if (/^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/.test(text)) return "not a valid IPv6 address";
    if (ADDRESS_PATTERN.test(text.toLowerCase())) return "write DNS names in lower case";
    return undefined;
}).describe("An IPv4 address (no leading zeros), an IPv6 address (no %zone) or a lower-case DNS name");

const Cidr = matching("a CIDR like 10.0.0.0/24", CIDR_PATTERN, (text) => {
    const cidr = parseCidr(text);
    if (cidr === undefined) return undefined;
    return `bits are set past the /${cidr.bits} prefix: the network is ${formatIp(cidr.family, networkOf(cidr))}/${cidr.bits}`;
}).refine((text) => {
    const cidr = parseCidr(text)!;
    return networkOf(cidr) === cidr.value;
});

const HostKey = z.string({
    error: (issue) => {
        const read = readHostKey(String(issue.input));
        return "problem" in read ? read.problem : notAHostKey();
    },
}).regex(HOST_KEY_LINE, { abort: true }).refine((text) => "pinned" in readHostKey(text))
    .describe('The host\'s public host key, pinned: one line "type base64 [comment]" of its ed25519 or ECDSA key (RSA keys cannot be verified)');

const portRange = (text: string) => {
    const [first, last] = text.split("-").map(Number);
    return { first, last };
};
const PortRange = matching('a port range like "5432-5499"', /^\d{1,5}-\d{1,5}$/)
    .refine((text) => {
        const { first, last } = portRange(text);
        return first >= 1024 && last <= 65535 && first <= last;
    }, { error: "is not a port range within 1024-65535, low to high" })
    .transform(portRange);

const ListenOn = z.enum(["loopback", "private"], { error: isNot('"loopback" or "private"') });

const LabMachine = Name.regex(LAB_MACHINE_PATTERN, { error: isNot("a lab machine (the lab's machines are spark-1 ... spark-100)") })
    .describe("A lab machine, spark-1 ... spark-100, named in sparks:hosts");

const Lab = fields({
    hosts: list(LabMachine).default([])
        .describe("Hosts of sparks:hosts that the stack makes as machines of the local lab (spark-K at 10.89.42.(10+K), port 22): their host keys are pinned as made, and they log in with the lab's own key"),
}).describe("Marks a lab stack, the only kind whose secrets may be under the public lab passphrase; it logs in with the lab's own key");

const Ssh = fields({
    user: UnixUser.default("root").describe("Login user on the hosts"),
    privateKeyFile: ProjectFile.optional().describe("A private key file inside the project, holding a -----BEGIN ... PRIVATE KEY----- block"),
    agent: YesNo.default(false).describe("Log in with the ssh agent at SSH_AUTH_SOCK"),
    connectAttempts: integer("a number of attempts", 1, 20).default(6)
        .describe("Attempts to reach a host's sshd before a command fails, with exponential backoff (each wait capped)"),
}).describe("How the deployment reaches every host over SSH. Exactly one way to log in: sparks:sshPrivateKey, privateKeyFile, agent: true, or sparks:lab");

const POOL = { device: Device, mountPoint: MountPoint, wipeOnDelete: YesNo.describe("Wipe the disk when the host leaves the config") };
const Pool = fields({ ...POOL, mountPoint: POOL.mountPoint.default(POOL_DEFAULTS.mountPoint), wipeOnDelete: POOL.wipeOnDelete.default(POOL_DEFAULTS.wipeOnDelete) })
    .describe("The btrfs pool every host keeps its data on");
// A host's own pool: each field it sets overrides sparks:pool's.
const HostPool = fields(POOL).partial().describe("This host's own pool settings, over sparks:pool's");

const Host = fields({
    name: Name,
    address: Address,
    port: Port.default(22),
    user: UnixUser.optional().describe("Login user on this host (default: sparks:ssh.user)"),
    hostKey: HostKey.optional(),
    hostKeyFile: ProjectFile.optional().describe("A file inside the project holding the host's public host key, instead of hostKey"),
    pool: HostPool.optional(),
}).describe("A host: exactly one of hostKey or hostKeyFile, unless it is a lab host (sparks:lab.hosts), whose key is pinned from the machine the stack makes");

const Pg = fields({
    ports: PortRange.prefault("5432-5499")
        .describe("Ports handed to instances and forks, inclusive, within 1024-65535: each holds one port on its host"),
    listen: list(ListenOn).default(["loopback", "private"]).describe("Where Postgres listens: loopback and/or the host's address"),
    allow: list(Cidr).default([])
        .describe("CIDRs (networks) that pg_hba admits over the network (scram-sha-256); loopback is always admitted. Prefixes shorter than /8 (IPv4) or /16 (IPv6) need allowWorld"),
    allowWorld: YesNo.default(false).describe("Allow world-open CIDRs in allow"),
    protectInstances: YesNo.default(true).describe("Removing an instance from config fails `pulumi up` instead of dropping its data (forks are never protected)"),
}).describe("Fleet-wide settings for spark-pg");

/** A fork's source: an instance or fork, or an instance's snapshot as NAME@SNAPSHOT. */
export const FORK_SOURCE_PATTERN = new RegExp(`^(${NAME_PATTERN.source.slice(1, -1)})(?:@(${NAME_PATTERN.source.slice(1, -1)}))?$`);
const PgInstance = fields({
    name: Name,
    host: HostName,
    snapshots: list(Name.describe("A snapshot's name")).default([])
        .describe("Named read-only snapshots taken when the instance is made (test fixtures: fork NAME@SNAPSHOT); the first up takes each, later ups leave them as they are"),
}).describe("A Postgres instance");
const PgFork = fields({
    name: Name,
    source: matching("an instance or fork's name, or INSTANCE@SNAPSHOT", FORK_SOURCE_PATTERN)
        .describe("A Postgres instance or another fork, or an instance's snapshot as INSTANCE@SNAPSHOT (a fixture)"),
}).describe("A fork of an instance, of another fork or of an instance's snapshot, on the source's host");
const RedisInstance = fields({ name: Name, host: HostName }).describe("A Redis instance");
const RedisFork = fields({
    name: Name,
    source: matching("an instance or fork's name", NAME_PATTERN).describe("A Redis instance or another Redis fork (Redis has no snapshots to fork)"),
}).describe("A copy of a Redis instance or fork as of when it is made, on the source's host");
const Redis = fields({
    ports: PortRange.prefault("6379-6449")
        .describe("Ports handed to Redis instances and forks, inclusive, within 1024-65535 and apart from sparks:pg.ports: each holds one port on its host"),
    listen: list(ListenOn).default(["loopback", "private"]).describe("Where Redis listens: loopback and/or the host's address"),
    appendfsync: z.enum(["always", "everysec"], { error: isNot('"always" or "everysec"') }).default("always")
        .describe("When Redis fsyncs its AOF: always (before each reply: a fork, or a crash, keeps every acknowledged write) or everysec " +
            "(about 10x the write throughput; a fork still holds every write Redis has written out, but a crash may lose the last second)"),
    protectInstances: YesNo.default(true).describe("Removing an instance from config fails `pulumi up` instead of dropping its data (forks are never protected)"),
    instances: list(RedisInstance).default([]),
    forks: list(RedisFork).default([]),
}).describe("Redis databases, run by spark-redis: their names are a namespace of their own, apart from Postgres's");
/** A dev container's name becomes its veth's (ve-NAME, at most 15 bytes): 2-12 long. */
export const DEV_CONTAINER_NAME_PATTERN = /^[a-z][a-z0-9-]{0,10}[a-z0-9]$/;
const PUBLIC_KEY_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];
const PublicKey = matching('an SSH public key ("ssh-ed25519 AAAA... comment")', new RegExp(`^(${PUBLIC_KEY_TYPES.join("|")}) [A-Za-z0-9+/]+={0,2}( [ -~]*)?$`))
    .refine((text) => wellFormedPublicKey(sshFields(text.split(" ")[1])), { error: "is not an SSH public key (its key data is not a well-formed key of its type)" });
const DevContainer = fields({
    name: matching("a valid dev container name (a-z, 0-9 and inner dashes, 2-12 long, starting with a letter)", DEV_CONTAINER_NAME_PATTERN)
        .describe("The container's name, 2-12 long (it names its network interface): also its host name"),
    host: HostName,
    address: matching("an IPv4 address", new RegExp(`^${IPV4}$`))
        .describe("The container's own IPv4 address on its host's network, which the host routes to it: SSH (user dev) and its services, 8080 among them, are reached there"),
    ownerKeys: list(PublicKey).min(1, { error: "needs at least one key" })
        .describe("The owner's SSH public keys, for user dev (with sudo inside the container)"),
    packages: list(matching("a Debian package name", /^[a-z0-9][a-z0-9+.-]{0,62}$/)).default([])
        .describe("Debian packages installed inside, beyond the base image's; removing one from the list removes it"),
    cpus: integer("a number of CPUs", 1, 256).optional().describe("CPU limit in whole CPUs (none if absent)"),
    memoryMb: integer("a memory size in MB", 64, 4194304).optional().describe("Memory limit in MB (none if absent)"),
    idleStopMinutes: integer("a number of minutes", 0, 10080).default(0)
        .describe("Stop the container after this many minutes with no SSH session (0: never)"),
    keepHome: YesNo.default(true).describe("Keep the home (a subvolume on the pool) when the container leaves the config"),
}).describe("A long-lived dev container on a host: systemd inside, its own /dev/kvm, a home that outlives it");
const SkillsRepo = fields({
    host: HostName.describe("The host that keeps and serves the repo (on its pool)"),
    port: Port.default(8080).describe("The HTTP port: anonymous clone and fetch at http://HOST:PORT/skills.git, /healthz, /skills.json"),
    pushKeys: list(PublicKey).default([])
        .describe("SSH public keys that may push (to sparks-skills@HOST:skills.git); none: only verify pushes"),
    seed: z.enum(["example", "empty"], { error: isNot('"example" or "empty"') }).default("example")
        .describe("The first commit, made once when the repo is made: a README and an example skill, or nothing (to push an existing repo's history)"),
    keepData: YesNo.default(true).describe("Keep the repo (its git data on the pool) when the skills repo leaves the config"),
}).describe("The team's skills repo: git over HTTP, pushes over SSH checked against the Agent Skills format, a clone in every dev container");

const SPARKS_KEYS = {
    "sparks:lab": Lab.optional(),
    "sparks:ssh": Ssh.prefault({}),
    // Its content is config.ts's to check: the messages about it must never show it.
    "sparks:sshPrivateKey": z.string({ error: NOT_A_PRIVATE_KEY }).optional()
        .describe("The SSH private key, stored as a secret: pulumi config set --secret sparks:sshPrivateKey < keyfile"),
    "sparks:pool": Pool.optional(),
    "sparks:hosts": list(Host).default([]),
    "sparks:pg": Pg.prefault({}),
    "sparks:postgres": list(PgInstance).default([]),
    "sparks:forks": list(PgFork).default([]),
    "sparks:redis": Redis.prefault({}),
    "sparks:devContainers": list(DevContainer).default([]),
    "sparks:skillsRepo": SkillsRepo.optional(),
};
/** The `sparks:` keys as the program reads them (decrypted). */
export const StackConfig = fields(SPARKS_KEYS, `unknown key (known: ${Object.keys(SPARKS_KEYS).join(", ")})`);

export type StackConfig = z.output<typeof StackConfig>;
export type LabSpec = z.output<typeof Lab>;
export type SshSettings = z.output<typeof Ssh>;
export type PoolSettings = z.output<typeof Pool>;
export type HostEntry = z.output<typeof Host>;
export type ListenOn = z.output<typeof ListenOn>;
export type PortRange = z.output<typeof PortRange>;
/** allowWorld only decides which pg.allow entries config accepts; nothing downstream reads it. */
export type PgSettings = Omit<z.output<typeof Pg>, "allowWorld">;
export type PgInstanceSpec = z.output<typeof PgInstance>;
export type PgForkEntry = z.output<typeof PgFork>;
export type RedisConfig = z.output<typeof Redis>;
/** What a host's setup needs of sparks:redis: the ports spark-redis hands out, where it listens, when it fsyncs. */
export type RedisSettings = Pick<RedisConfig, "ports" | "listen" | "appendfsync">;
export type RedisInstanceSpec = z.output<typeof RedisInstance>;
export type RedisForkEntry = z.output<typeof RedisFork>;
export type DevContainerSpec = z.output<typeof DevContainer>;
export type SkillsRepoSpec = z.output<typeof SkillsRepo>;

// What config.ts checks again before it relies on a value (a refused one is kept for its messages).
export { Address, Cidr, ProjectFile };

/** A secret as a stack file holds it: `pulumi config set --secret` stores the value encrypted. */
const Secret = z.strictObject({ secure: z.string().regex(/^v1:/) })
    .meta({ id: "secret", description: "A Pulumi secret, as `pulumi config set --secret` stores it (encrypted)" });

// In the file, any key's whole value may be a secret, and sparks:sshPrivateKey must be one.
const FILE_CONFIG = Object.fromEntries(Object.entries(SPARKS_KEYS).map(([key, value]) =>
    [key, key === SSH_PRIVATE_KEY ? Secret.optional().describe(value.description!) : z.union([value, Secret]).optional()]));

/** A whole Pulumi.<stack>.yaml, for editors and CI: only ever turned into JSON Schema. */
const StackFile = z.strictObject({
    config: z.strictObject(FILE_CONFIG)
        .meta({
            description: "Sparks settings go under sparks:; the providers' own under their namespaces",
            patternProperties: { [`^(${OTHER_NAMESPACES.join("|")}):`]: {} },
        })
        .optional(),
    secretsprovider: z.string().optional().describe("The secrets provider that encrypts this stack's secrets"),
    encryptedkey: z.string().optional().describe("The data key for secrets, encrypted by a cloud secrets provider"),
    encryptionsalt: z.string().optional().describe("The salt of the passphrase secrets provider"),
    environment: z.union([z.array(z.string()), z.record(z.string(), z.unknown())]).optional()
        .describe("Pulumi ESC environments the stack imports"),
}).meta({
    title: "Sparks stack settings (Pulumi.<stack>.yaml)",
    description: "Generated from components/configSchema.ts by scripts/config-schema; do not edit. It checks each value by itself; " +
        "what depends on other values or files (duplicates, references, key files, the lab's rules) only `pulumi preview` reports",
});

type JsonSchema = { [keyword: string]: unknown };
const SECRET_REF = { $ref: "#/definitions/secret" };

/** `pulumi config set --secret --path` encrypts one string inside a value: in config, any string may be a secret. */
function allowSecretStrings(node: JsonSchema): JsonSchema {
    if (node.type === "string") {
        const { description, default: fallback, ...plain } = node;
        return { description, default: fallback, anyOf: [plain, SECRET_REF] };
    }
    const each = (nodes: Record<string, JsonSchema>) => Object.fromEntries(Object.entries(nodes).map(([key, n]) => [key, allowSecretStrings(n)]));
    return {
        ...node,
        ...(node.properties ? { properties: each(node.properties as Record<string, JsonSchema>) } : {}),
        ...(node.items ? { items: allowSecretStrings(node.items as JsonSchema) } : {}),
        ...(node.anyOf ? { anyOf: (node.anyOf as JsonSchema[]).map(allowSecretStrings) } : {}),
    };
}

/** The JSON Schema of a stack file, as scripts/config-schema writes it. */
export function stackFileJsonSchema(): string {
    const schema = z.toJSONSchema(StackFile, { target: "draft-07", io: "input" }) as JsonSchema;
    const properties = schema.properties as Record<string, JsonSchema>;
    properties.config = allowSecretStrings(properties.config);
    return `${JSON.stringify(schema, null, 2)}\n`;
}
