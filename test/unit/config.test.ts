// The config schema, checked without the engine: good stack files parse, bad ones fail with one
// exact message per problem, and the JSON Schema that editors use agrees on what it can see.
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import Ajv from "ajv";
import * as YAML from "yaml";
import { ConfigEnvironment, FleetConfig, loadFleetConfig, parseFleetConfig, uriHost } from "../../components/config";
import { STACK_FILE_SCHEMA, stackFileJsonSchema } from "../../components/configSchema";

const ROOT = path.resolve(__dirname, "../..");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
// Real public keys (ssh-keygen), one per ECDSA curve.
const ECDSA_KEYS = [
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCS5aDSB99iVwCiZFs7GJ2wu1V/73MLrdDjywDhrkWlYDnebztt8KZrW2gAJOlhaTzGKEGL5/nfMFpNpfutHH0c=",
    "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBBX1PGW3eyP5UcTFNqt3nCN8DsvO4VwkRVnsNtp8JS4Z8zlxVdCSqrjcsdb35+P5PhsHEQhLsfCjzg0YzkOU87kkT52F+tjgM88arIbDs7/+dKYhP8Ykxfk+OxcdYVnJGA==",
    "ecdsa-sha2-nistp521 AAAAE2VjZHNhLXNoYTItbmlzdHA1MjEAAAAIbmlzdHA1MjEAAACFBAF0Dam//mSpKkpb/Xs7ED9f87ejsCQRG23i6d8eDw1p/jxSPsW9mjTSimXFHx25JQmXazzAHQwqJNe1/rHRTMJt+gHEAj4+vpw3xonfc1NENNmmvp2mVyvM/k4vgBi9T/SNWv1OCtMYY8J/Ynb1LbC1qKqgzww6nz48CQiLMuhyi+Y3Bw==",
];
const ECDSA_DATA = ECDSA_KEYS[0].split(" ")[1];
/** Shaped like an OpenSSH private key, holding none. */
const PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n-----END OPENSSH PRIVATE KEY-----\n";
/** 68 characters of base64, like an ed25519 key's, that decode to text: no key, and maybe a token. */
const NOT_A_KEY = Buffer.from("this is not a key at all, only some bytes of text!!").toString("base64");

const FILES: Record<string, string> = {
    "/project/.lab/ssh/id_ed25519": PRIVATE_KEY,
    "/project/.lab/ssh/id_ed25519.pub": `${HOST_KEY} lab\n`,
    "/project/.lab/hosts/spark-1/ssh_host_ed25519_key.pub": `${HOST_KEY} root@spark-1\n`,
    "/project/.lab/hosts/spark-2/ssh_host_ed25519_key.pub": `${HOST_KEY} root@spark-2\n`,
    "/project/keys/two.pub": `${HOST_KEY} root@spark-1\n${ECDSA_KEYS[0]} root@spark-1\n`,
};

/** A fake project directory: the lab's key files exist, and a few bad ones; nothing else does. */
const env: ConfigEnvironment = { projectDir: "/project", readFile: (file) => FILES[file] };

const stackFile = (stack: string) => fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8");
const stackConfig = (stack: string): Record<string, unknown> => YAML.parse(stackFile(stack)).config;

const validateStackFile = new Ajv({ allErrors: true }).compile(JSON.parse(fs.readFileSync(path.join(ROOT, STACK_FILE_SCHEMA), "utf8")));

/** What the committed JSON Schema says of a stack file: one line per error, none if it accepts it. */
function schemaErrors(file: unknown): string[] {
    return validateStackFile(file) ? [] : validateStackFile.errors!.map((e) => `${e.instancePath} ${e.message}`);
}

/** A config as its stack file holds it: the keys stored as secrets are encrypted, so opaque to the schema. */
function asStackFile(config: Record<string, unknown>, secretKeys: readonly string[] = []) {
    const stored = Object.entries(config).map(([key, value]) => [key, secretKeys.includes(key) ? { secure: "v1:c2FsdA==:Y2lwaGVy" } : value]);
    return { config: JSON.parse(JSON.stringify(Object.fromEntries(stored))) };
}

/** Parses a config that must be good, and checks that the JSON Schema accepts it too. */
function parseGood(config: Record<string, unknown>, secretKeys: string[] = [], environment = env): FleetConfig {
    const { fleet, problems } = parseFleetConfig(config, environment, secretKeys);
    expect(problems).toEqual([]);
    expect(schemaErrors(asStackFile(config, secretKeys))).toEqual([]);
    return fleet!;
}

const LOGIN_WAYS = "sparks:ssh: needs exactly one way to log in: sparks:sshPrivateKey (a secret), ssh.privateKeyFile, ssh.agent: true, " +
    "or sparks:lab (the lab's own key)";

/** A small valid fleet; each bad case below changes one thing. */
const good = (): Record<string, unknown> => ({
    "sparks:ssh": { privateKeyFile: ".lab/ssh/id_ed25519" },
    "sparks:pool": { device: "/dev/vdb" },
    "sparks:hosts": [
        { name: "spark-1", address: "10.89.42.11", hostKeyFile: ".lab/hosts/spark-1/ssh_host_ed25519_key.pub" },
        { name: "spark-2", address: "10.89.42.12", port: 2222, hostKey: HOST_KEY },
    ],
    "sparks:postgres": [{ name: "app", host: "spark-1" }],
    "sparks:forks": [{ name: "app-review", source: "app" }, { name: "app-review-2", source: "app-review" }],
});

/** Gives the config Redis databases beside its Postgres ones: an instance on spark-1, a fork, a fork of that fork. */
function withRedis(config: Record<string, any>): void {
    config["sparks:redis"] = {
        instances: [{ name: "cache", host: "spark-1" }],
        forks: [{ name: "cache-review", source: "cache" }, { name: "cache-review-2", source: "cache-review" }],
    };
}

const OWNER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB ada@laptop";
/** A valid dev container on spark-1, with `change` over it. */
const devContainer = (change: Record<string, unknown> = {}) =>
    ({ name: "ada", host: "spark-1", address: "10.89.42.201", ownerKeys: [OWNER_KEY], ...change });

/** Makes the good config a lab stack, as Pulumi.dev.yaml is: its hosts are lab machines, with no key of their own. */
function toLab(config: Record<string, any>): void {
    config["sparks:lab"] = { hosts: ["spark-1", "spark-2"] };
    delete config["sparks:ssh"].privateKeyFile;
    for (const host of config["sparks:hosts"]) {
        delete host.hostKey;
        delete host.hostKeyFile;
        delete host.port;
    }
}

const labStack = () => {
    const config = good();
    toLab(config);
    return config;
};

describe("stack files", () => {
    test.each(["dev", "prod"])("Pulumi.%s.yaml is valid", (stack) => {
        expect(parseFleetConfig(stackConfig(stack), env).problems).toEqual([]);
    });

    test.each(["dev", "prod"])("Pulumi.%s.yaml is valid to the JSON Schema, whole", (stack) => {
        expect(schemaErrors(YAML.parse(stackFile(stack)))).toEqual([]);
    });

    test("dev and prod use the same keys, so they differ only in values (and dev is the lab's stack)", () => {
        const { "sparks:lab": lab, ...dev } = stackConfig("dev");
        expect(lab).toEqual({ hosts: ["spark-1", "spark-2"] });
        expect(Object.keys(dev).sort()).toEqual(Object.keys(stackConfig("prod")).sort());
    });

    test("prod only names documentation addresses (192.0.2.0/24), which no test may contact", () => {
        const hosts = stackConfig("prod")["sparks:hosts"] as { address: string }[];
        expect(hosts.length).toBeGreaterThan(0);
        for (const host of hosts) expect(host.address).toMatch(/^192\.0\.2\.\d+$/);
    });
});

describe("the JSON Schema of stack files", () => {
    test(`${STACK_FILE_SCHEMA} is what scripts/config-schema writes from the declaration (run it after changing components/configSchema.ts)`, () => {
        expect(fs.readFileSync(path.join(ROOT, STACK_FILE_SCHEMA), "utf8")).toBe(stackFileJsonSchema());
    });

    test.each(["dev", "prod"])("Pulumi.%s.yaml names it on its first line, for editors", (stack) => {
        expect(stackFile(stack).split("\n")[0]).toBe(`# yaml-language-server: $schema=./${STACK_FILE_SCHEMA}`);
    });

    test("VS Code applies it to every stack file", () => {
        const settings = JSON.parse(fs.readFileSync(path.join(ROOT, ".vscode/settings.json"), "utf8"));
        expect(settings["yaml.schemas"]).toEqual({ [`./${STACK_FILE_SCHEMA}`]: "Pulumi.*.yaml" });
    });

    test("allows the providers' own keys, secrets anywhere, and sparks:sshPrivateKey only as a secret", () => {
        const secret = { secure: "v1:c2FsdA==:Y2lwaGVy" };
        expect(schemaErrors({ config: { "pulumi:tags": { team: "sparks" }, "command:x": 1, "random:y": "z" } })).toEqual([]);
        expect(schemaErrors({ config: { ...asStackFile(good()).config, "sparks:pool": secret } })).toEqual([]);
        const pathSecret = asStackFile(good());
        pathSecret.config["sparks:hosts"][0].address = secret;
        expect(schemaErrors(pathSecret)).toEqual([]);
        expect(schemaErrors({ config: { "sparks:sshPrivateKey": secret } })).toEqual([]);
        expect(schemaErrors({ config: { "sparks:sshPrivateKey": PRIVATE_KEY } })).not.toEqual([]);
        expect(schemaErrors({ environment: ["sparks/dev"], encryptionsalt: "v1:x", config: {} })).toEqual([]);
        expect(schemaErrors({ confg: {} })).not.toEqual([]);
    });
});

describe("no code decides by the stack's name", () => {
    // components/identity.ts records the stack's name on hosts as data (who made a database); it
    // is the one file allowed to read it, and decides nothing by it.
    const sources = ["index.ts", ...fs.readdirSync(path.join(ROOT, "components")).map((f) => `components/${f}`)]
        .filter((f) => f.endsWith(".ts") && f !== "components/identity.ts");
    test.each(sources)("%s does not read the stack name", (file) => {
        expect(fs.readFileSync(path.join(ROOT, file), "utf8")).not.toMatch(/getStack\s*\(|PULUMI_STACK|\.stack\b/);
    });
});

describe("the public lab passphrase", () => {
    const labOnly = { ...env, secretsUnderLabPassphrase: true };
    test("is refused for a stack that is not a lab stack, saying what to do", () => {
        const { problems } = parseFleetConfig(good(), labOnly);
        expect(problems).toEqual([
            'sparks:lab: is not set, but this stack\'s secrets are encrypted under the public lab passphrase ("sparks-dev-lab", which ' +
            "toolchain/env.sh sets when no other is given): only a lab stack may use it. Set your own PULUMI_CONFIG_PASSPHRASE " +
            "(or PULUMI_CONFIG_PASSPHRASE_FILE, or a KMS secrets provider) before `pulumi stack init`, or move an existing stack " +
            "with `pulumi stack change-secrets-provider`",
        ]);
    });

    test("is fine for a lab stack, and sparks:lab names the hosts that are lab machines", () => {
        const fleet = parseGood(labStack(), [], labOnly);
        expect(fleet.lab).toEqual({ hosts: ["spark-1", "spark-2"] });
        expect(fleet.hosts.map((h) => [h.name, h.lab, h.hostKey])).toEqual([["spark-1", true, undefined], ["spark-2", true, undefined]]);
    });

    test("is fine for a lab stack with no lab machines", () => {
        expect(parseGood({ "sparks:lab": {} }, [], labOnly).lab).toEqual({ hosts: [] });
    });
});

describe("a good config", () => {
    const fleet = parseGood(good());

    test("parses with defaults applied", () => {
        expect(fleet.ssh).toEqual({ user: "root", privateKeyFile: ".lab/ssh/id_ed25519", agent: false, connectAttempts: 6 });
        expect(fleet.hosts[0]).toEqual({
            name: "spark-1", address: "10.89.42.11", port: 22, user: "root", hostKey: HOST_KEY,
            pool: { device: "/dev/vdb", mountPoint: "/srv/sparks", wipeOnDelete: false }, lab: false,
        });
        expect(fleet.pg).toEqual({ ports: { first: 5432, last: 5499 }, listen: ["loopback", "private"], allow: [], protectInstances: true });
    });

    test("a dev container parses with its defaults: no packages or limits, never idle-stopped, home kept", () => {
        const config = good();
        config["sparks:devContainers"] = [devContainer()];
        expect(parseGood(config).devContainers).toEqual([
            { name: "ada", host: "spark-1", address: "10.89.42.201", ownerKeys: [OWNER_KEY], packages: [], idleStopMinutes: 0, keepHome: true },
        ]);
    });

    test("the pinned host key drops the comment", () => {
        expect(fleet.hosts[0].hostKey).toBe(HOST_KEY);
    });

    test("a fork of a fork lives on its root instance's host", () => {
        expect(fleet.forks).toEqual([
            { name: "app-review", source: "app", host: "spark-1" },
            { name: "app-review-2", source: "app-review", host: "spark-1" },
        ]);
    });

    test.each(ECDSA_KEYS)("an ECDSA host key parses: %s", (hostKey) => {
        const config: Record<string, any> = good();
        config["sparks:hosts"][1].hostKey = `${hostKey} root@spark-2`;
        expect(parseGood(config).hosts[1].hostKey).toBe(hostKey);
    });

    test("IPv6 addresses, DNS names, stable device names and a host's own mount point parse", () => {
        const config: Record<string, any> = good();
        config["sparks:hosts"][0].address = "fd00:89:42::11";
        config["sparks:hosts"][1].address = "spark-2.lab.example.com";
        config["sparks:hosts"][1].pool = { device: "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", mountPoint: "/mnt/pool-2" };
        config["sparks:pool"].device = "/dev/disk/by-id/nvme-eui.0025388b91b3c2d1";
        expect(parseGood(config).hosts.map((h) => [h.address, h.pool.device, h.pool.mountPoint])).toEqual([
            ["fd00:89:42::11", "/dev/disk/by-id/nvme-eui.0025388b91b3c2d1", "/srv/sparks"],
            ["spark-2.lab.example.com", "/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "/mnt/pool-2"],
        ]);
    });

    test("world-open CIDRs pass with sparks:pg.allowWorld", () => {
        const config: Record<string, any> = good();
        config["sparks:pg"] = { allow: ["0.0.0.0/0", "::/0"], allowWorld: true };
        expect(parseGood(config).pg.allow).toEqual(["0.0.0.0/0", "::/0"]);
    });

    test("a private key secret parses when stored as a secret", () => {
        const config: Record<string, any> = good();
        delete config["sparks:ssh"].privateKeyFile;
        config["sparks:sshPrivateKey"] = PRIVATE_KEY;
        parseGood(config, ["sparks:sshPrivateKey"]);
    });

    test("Redis databases parse with the defaults applied, each fork on its root instance's host", () => {
        const config = good();
        withRedis(config);
        expect(parseGood(config).redis).toEqual({
            ports: { first: 6379, last: 6449 }, listen: ["loopback", "private"], appendfsync: "always", protectInstances: true,
            instances: [{ name: "cache", host: "spark-1" }],
            forks: [{ name: "cache-review", source: "cache", host: "spark-1" }, { name: "cache-review-2", source: "cache-review", host: "spark-1" }],
        });
    });

    test("Redis names are a namespace of their own: a Redis database may share a Postgres one's name", () => {
        const config: Record<string, any> = good();
        config["sparks:redis"] = {
            ports: "7000-7001", listen: ["private"], appendfsync: "everysec", protectInstances: false,
            instances: [{ name: "app", host: "spark-2" }], forks: [{ name: "app-review", source: "app" }],
        };
        expect(parseGood(config).redis).toEqual({
            ports: { first: 7000, last: 7001 }, listen: ["private"], appendfsync: "everysec", protectInstances: false,
            instances: [{ name: "app", host: "spark-2" }], forks: [{ name: "app-review", source: "app", host: "spark-2" }],
        });
    });

    test("a skills repo takes its defaults: port 8080, no push keys, the example seed, data kept", () => {
        const config: Record<string, any> = good();
        config["sparks:skillsRepo"] = { host: "spark-1" };
        expect(parseGood(config).skillsRepo).toEqual({ host: "spark-1", port: 8080, pushKeys: [], seed: "example", keepData: true });
    });

    test("a config with no hosts is an empty fleet", () => {
        expect(schemaErrors(asStackFile({}))).toEqual([]);
        expect(parseFleetConfig({}, env)).toEqual({
            fleet: {
                ssh: { user: "root", agent: false, connectAttempts: 6, privateKeyFile: undefined }, hosts: [],
                pg: { ports: { first: 5432, last: 5499 }, listen: ["loopback", "private"], allow: [], protectInstances: true }, postgres: [], forks: [],
                redis: { ports: { first: 6379, last: 6449 }, listen: ["loopback", "private"], appendfsync: "always", protectInstances: true, instances: [], forks: [] },
                devContainers: [], skillsRepo: undefined,
            },
            problems: [],
        });
    });
});

type Change = (config: Record<string, any>) => void;
/**
 * Whether the JSON Schema refuses the stack file too ("schema": a value's type, pattern or range,
 * an unknown key), or only the program can tell ("parser": files, duplicates, references, cycles,
 * port capacity, key data, values encrypted in the file, the lab's rules).
 */
type CaughtBy = "schema" | "parser";
/** Title, the change to the good config, the exact messages, who catches it, and which keys are stored as secrets. */
const badCases: [string, Change, string[], CaughtBy, string[]?][] = [
    ["wrong type", (c) => { c["sparks:hosts"][0].port = "22"; },
        ['sparks:hosts[0].port: "22" is not a TCP port (1-65535)'], "schema"],
    ["port out of range", (c) => { c["sparks:hosts"][1].port = 70000; },
        ["sparks:hosts[1].port: 70000 is not a TCP port (1-65535)"], "schema"],
    ["unknown top-level key", (c) => { c["sparks:host"] = []; },
        ["sparks:host: unknown key (known: sparks:lab, sparks:ssh, sparks:sshPrivateKey, sparks:pool, sparks:hosts, sparks:pg, sparks:postgres, sparks:forks, sparks:redis, sparks:devContainers, sparks:skillsRepo)"], "schema"],
    ["unknown field", (c) => { c["sparks:hosts"][0].adress = "10.0.0.1"; },
        ["sparks:hosts[0].adress: unknown field (allowed: name, address, port, user, hostKey, hostKeyFile, pool)"], "schema"],
    ["unknown namespace", (c) => { c["spraks:hosts"] = []; },
        ['spraks:hosts: unknown config namespace "spraks" (Sparks settings go under "sparks:")'], "schema"],
    ["duplicate host name", (c) => { c["sparks:hosts"][1].name = "spark-1"; },
        ['sparks:hosts[1].name: "spark-1" is already used by sparks:hosts[0].name'], "parser"],
    ["duplicate instance and fork name", (c) => { c["sparks:forks"][0].name = "app"; c["sparks:forks"][1].source = "app"; },
        ['sparks:forks[0].name: "app" is already used by sparks:postgres[0].name'], "parser"],
    ["a name with ;", (c) => { c["sparks:postgres"][0].name = "app;reboot"; },
        ['sparks:postgres[0].name: "app;reboot" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            'sparks:forks[0].source: "app" is not an instance in sparks:postgres or a fork in sparks:forks'], "schema"],
    ["a name with /", (c) => { c["sparks:hosts"][0].name = "../spark"; },
        ['sparks:hosts[0].name: "../spark" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            'sparks:postgres[0].host: "spark-1" is not a host in sparks:hosts'], "schema"],
    ["bad address", (c) => { c["sparks:hosts"][0].address = "10.0.0.1; rm -rf /"; },
        ['sparks:hosts[0].address: "10.0.0.1; rm -rf /" is not an IP address or DNS name'], "schema"],
    ["bad host key", (c) => { c["sparks:hosts"][1].hostKey = "ssh-ed25519 $(reboot)"; },
        ['sparks:hosts[1].hostKey: "ssh-ed25519 $(reboot)" is not an SSH public host key ("ssh-ed25519 AAAA...")'], "schema"],
    ["an RSA host key, which the command provider cannot verify on OpenSSH 8.8+",
        (c) => { c["sparks:hosts"][1].hostKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7"; },
        ['sparks:hosts[1].hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7" is an RSA host key, which the command provider verifies only with SHA-1 signatures ("ssh-rsa") that OpenSSH 8.8 and later refuse; pin the host\'s ed25519 or ECDSA key instead'], "schema"],
    ["both host key forms", (c) => { c["sparks:hosts"][1].hostKeyFile = "k.pub"; },
        ["sparks:hosts[1]: needs exactly one of hostKey (the pinned public host key) or hostKeyFile"], "parser"],
    ["missing host key file", (c) => { c["sparks:hosts"][0].hostKeyFile = ".lab/hosts/spark-9/key.pub"; },
        ['sparks:hosts[0].hostKeyFile: ".lab/hosts/spark-9/key.pub" does not exist (for a lab machine the stack makes, name it in sparks:lab.hosts instead)'], "parser"],
    ["key file outside the project", (c) => { c["sparks:ssh"].privateKeyFile = "../id_ed25519"; },
        ['sparks:ssh.privateKeyFile: "../id_ed25519" must stay inside the project (no \'..\')'], "schema"],
    ["two ways to log in", (c) => { c["sparks:ssh"].agent = true; },
        [LOGIN_WAYS], "parser"],
    ["no pool device", (c) => { delete c["sparks:pool"]; },
        ["sparks:hosts[0]: has no btrfs pool device: set sparks:pool.device (or this host's pool.device)",
            "sparks:hosts[1]: has no btrfs pool device: set sparks:pool.device (or this host's pool.device)"], "parser"],
    ["bad device", (c) => { c["sparks:pool"].device = "/dev/vdb; mkfs"; },
        ['sparks:pool.device: "/dev/vdb; mkfs" is not a device path under /dev'], "schema"],
    ["mount point with ..", (c) => { c["sparks:pool"].mountPoint = "/srv/../etc"; },
        ["sparks:pool.mountPoint: \"/srv/../etc\" is not a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')"], "schema"],
    ["unknown host for an instance", (c) => { c["sparks:postgres"][0].host = "spark-9"; },
        ['sparks:postgres[0].host: "spark-9" is not a host in sparks:hosts'], "parser"],
    ["unknown fork source", (c) => { c["sparks:forks"][0].source = "nope"; },
        ['sparks:forks[0].source: "nope" is not an instance in sparks:postgres or a fork in sparks:forks'], "parser"],
    ["a fork of a snapshot the instance does not declare", (c) => { c["sparks:forks"][0].source = "app@fixture"; },
        ["sparks:forks[0].source: \"app@fixture\": 'fixture' is not in sparks:postgres[0].snapshots"], "parser"],
    ["a fork of a fork's snapshot", (c) => { c["sparks:postgres"][0].snapshots = ["fixture"]; c["sparks:forks"][1].source = "app-review@fixture"; },
        ["sparks:forks[1].source: \"app-review@fixture\": only an instance in sparks:postgres has snapshots, and 'app-review' is none"], "parser"],
    ["a bad or repeated snapshot name", (c) => { c["sparks:postgres"][0].snapshots = ["Fixture", "ok-1", "ok-1"]; c["sparks:forks"][0].source = "app@x;y"; },
        ['sparks:postgres[0].snapshots[0]: "Fixture" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            "sparks:forks[0].source: \"app@x;y\" is not an instance or fork's name, or INSTANCE@SNAPSHOT",
            'sparks:postgres[0].snapshots[2]: "ok-1" is already used by sparks:postgres[0].snapshots[1]'], "schema"],
    ["a cycle of forks", (c) => { c["sparks:forks"][0].source = "app-review-2"; },
        ['sparks:forks[0].source: "app-review-2" leads to a cycle of forks',
            'sparks:forks[1].source: "app-review" leads to a cycle of forks'], "parser"],
    ["bad port range", (c) => { c["sparks:pg"] = { ports: "5499-5432" }; },
        ['sparks:pg.ports: "5499-5432" is not a port range within 1024-65535, low to high'], "parser"],
    ["bad listen and allow", (c) => { c["sparks:pg"] = { listen: ["everywhere"], allow: ["10.0.0.0/33"] }; },
        ['sparks:pg.listen[0]: "everywhere" is not "loopback" or "private"',
            'sparks:pg.allow[0]: "10.0.0.0/33" is not a CIDR like 10.0.0.0/24'], "schema"],
    ["hosts not a list", (c) => { c["sparks:hosts"] = { name: "spark-1" }; },
        ['sparks:hosts: {"name":"spark-1"} is not a list',
            'sparks:postgres[0].host: "spark-1" is not a host in sparks:hosts'], "schema"],
    ["a dev container name too long for its interface", (c) => { c["sparks:devContainers"] = [devContainer({ name: "adalovelace-1" })]; },
        ['sparks:devContainers[0].name: "adalovelace-1" is not a valid dev container name (a-z, 0-9 and inner dashes, 2-12 long, starting with a letter)'], "schema"],
    ["a dev container address that is not IPv4", (c) => { c["sparks:devContainers"] = [devContainer({ address: "fd00::50" })]; },
        ['sparks:devContainers[0].address: "fd00::50" is not an IPv4 address'], "schema"],
    ["a dev container on a host's address", (c) => { c["sparks:devContainers"] = [devContainer({ address: "10.89.42.12" })]; },
        ['sparks:devContainers[0].address: "10.89.42.12" is already used by sparks:hosts[1].address'], "parser"],
    ["two dev containers on one address", (c) => { c["sparks:devContainers"] = [devContainer(), devContainer({ name: "bob" })]; },
        ['sparks:devContainers[1].address: "10.89.42.201" is already used by sparks:devContainers[0].address'], "parser"],
    ["a dev container with no owner keys", (c) => { c["sparks:devContainers"] = [devContainer({ ownerKeys: [] })]; },
        ["sparks:devContainers[0].ownerKeys: [] needs at least one key"], "schema"],
    ["a dev container owner key that is not a key", (c) => { c["sparks:devContainers"] = [devContainer({ ownerKeys: ["ssh-ed25519 AAAAC3Nz ada"] })]; },
        ['sparks:devContainers[0].ownerKeys[0]: "ssh-ed25519 AAAAC3Nz ada" is not an SSH public key (its key data is not a well-formed key of its type)'], "parser"],
    ["a dev container package that is no package name", (c) => { c["sparks:devContainers"] = [devContainer({ packages: ["gcc; rm -rf /"] })]; },
        ['sparks:devContainers[0].packages[0]: "gcc; rm -rf /" is not a Debian package name'], "schema"],
    ["dev container limits out of range", (c) => { c["sparks:devContainers"] = [devContainer({ cpus: 0, memoryMb: 16, idleStopMinutes: -1 })]; },
        ["sparks:devContainers[0].cpus: 0 is not a number of CPUs (1-256)",
            "sparks:devContainers[0].memoryMb: 16 is not a memory size in MB (64-4194304)",
            "sparks:devContainers[0].idleStopMinutes: -1 is not a number of minutes (0-10080)"], "schema"],
    ["a dev container on an unknown host", (c) => { c["sparks:devContainers"] = [devContainer({ host: "spark-9" })]; },
        ['sparks:devContainers[0].host: "spark-9" is not a host in sparks:hosts'], "parser"],
    ["a dev container on a lab host at an address the lab uses", (c) => { toLab(c); c["sparks:devContainers"] = [devContainer({ address: "10.89.42.50" })]; },
        ['sparks:devContainers[0].address: "10.89.42.50" is not free on the lab network: a container on a lab host needs an address from 10.89.42.111 to 10.89.42.254'], "parser"],
    ["a skills repo on an unknown host", (c) => { c["sparks:skillsRepo"] = { host: "spark-9" }; },
        ['sparks:skillsRepo.host: "spark-9" is not a host in sparks:hosts'], "parser"],
    ["a skills repo on a port spark-pg hands out", (c) => { c["sparks:skillsRepo"] = { host: "spark-1", port: 5440 }; },
        ["sparks:skillsRepo.port: 5440 is in sparks:pg.ports (5432-5499), which spark-pg hands to databases"], "parser"],
    ["a skills repo on its host's SSH port", (c) => { c["sparks:skillsRepo"] = { host: "spark-1", port: 22 }; },
        ["sparks:skillsRepo.port: 22 is the SSH port of host spark-1"], "parser"],
    ["a skills repo with a bad port, push key, seed and keepData", (c) => {
        c["sparks:skillsRepo"] = { host: "spark-1", port: 80800, pushKeys: ["ada@laptop"], seed: "everything", keepData: "yes" };
    }, ["sparks:skillsRepo.port: 80800 is not a TCP port (1-65535)",
        'sparks:skillsRepo.pushKeys[0]: "ada@laptop" is not an SSH public key ("ssh-ed25519 AAAA... comment")',
        'sparks:skillsRepo.seed: "everything" is not "example" or "empty"',
        'sparks:skillsRepo.keepData: "yes" is not true or false'], "schema"],
    ["a skills repo with an unknown field", (c) => { c["sparks:skillsRepo"] = { host: "spark-1", pushkeys: [] }; },
        ["sparks:skillsRepo.pushkeys: unknown field (allowed: host, port, pushKeys, seed, keepData)"], "schema"],
    // Never echo secrets or key material: errors end up in logs and CI output.
    ["a private key pasted as a host key is not shown", (c) => { c["sparks:hosts"][1].hostKey = PRIVATE_KEY; },
        ['sparks:hosts[1].hostKey: (value not shown: it looks like a private key) is not an SSH public host key ("ssh-ed25519 AAAA...")'], "schema"],
    ["a long base64 run that is no public key is not shown", (c) => { c["sparks:hosts"][1].hostKey = `ssh-ed25519 ${NOT_A_KEY}`; },
        ["sparks:hosts[1].hostKey: (value not shown: it looks like key material) is not an SSH public host key (its key data is not a well-formed ssh-ed25519 key)"], "parser"],
    ["no value of a key stored as a secret is shown", (c) => { c["sparks:hosts"][0].address = "10.0.0.1; rm -rf /"; c["sparks:hosts"][1].port = "22"; },
        ["sparks:hosts[0].address: (value not shown: it is a secret) is not an IP address or DNS name",
            "sparks:hosts[1].port: (value not shown: it is a secret) is not a TCP port (1-65535)"], "parser",
        ["sparks:hosts"]],
    // Host keys: one key, whose data is a key of the stated type.
    ["a host key with no key data", (c) => { c["sparks:hosts"][1].hostKey = "ssh-ed25519"; },
        ['sparks:hosts[1].hostKey: "ssh-ed25519" is not an SSH public host key (no key data after the type; pin the whole line of the server\'s host key file, e.g. /etc/ssh/ssh_host_ed25519_key.pub)'], "schema"],
    ["a host key file with a second key", (c) => { c["sparks:hosts"][0].hostKeyFile = "keys/two.pub"; },
        ['sparks:hosts[0].hostKeyFile: "keys/two.pub" is not an SSH public host key (it has 2 lines; pin exactly one key)'], "parser"],
    ["an inline host key with a second line", (c) => { c["sparks:hosts"][1].hostKey = `${HOST_KEY}\nssh-ed25519 AAAA`; },
        [`sparks:hosts[1].hostKey: "${HOST_KEY}\\nssh-ed25519 AAAA" is not an SSH public host key (it has 2 lines; pin exactly one key)`], "schema"],
    ["host key data of another type", (c) => { c["sparks:hosts"][1].hostKey = `ssh-ed25519 ${ECDSA_DATA}`; },
        [`sparks:hosts[1].hostKey: "ssh-ed25519 ${ECDSA_DATA}" is not an SSH public host key (its key data is an ecdsa-sha2-nistp256 key, not ssh-ed25519)`], "parser"],
    ["an ECDSA key labelled with another curve", (c) => { c["sparks:hosts"][1].hostKey = `ecdsa-sha2-nistp384 ${ECDSA_DATA}`; },
        [`sparks:hosts[1].hostKey: "ecdsa-sha2-nistp384 ${ECDSA_DATA}" is not an SSH public host key (its key data is an ecdsa-sha2-nistp256 key, not ecdsa-sha2-nistp384)`], "parser"],
    ["host key data cut short", (c) => { c["sparks:hosts"][1].hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAA"; },
        ['sparks:hosts[1].hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAA" is not an SSH public host key (its key data is not a well-formed ssh-ed25519 key)'], "parser"],
    // Addresses: what ssh, glibc and URIs will read the same way.
    ["an IPv4-looking address out of range", (c) => { c["sparks:hosts"][0].address = "999.1.1.1"; },
        ['sparks:hosts[0].address: "999.1.1.1" is not an IP address or DNS name (an IPv4 address is four numbers 0-255, without leading zeros)'], "schema"],
    ["an IPv4 address with a leading zero (octal to glibc)", (c) => { c["sparks:hosts"][0].address = "10.89.42.011"; },
        ['sparks:hosts[0].address: "10.89.42.011" is not an IP address or DNS name (an IPv4 address is four numbers 0-255, without leading zeros)'], "schema"],
    ["a lone colon", (c) => { c["sparks:hosts"][0].address = ":"; },
        ['sparks:hosts[0].address: ":" is not an IP address or DNS name (not a valid IPv6 address)'], "schema"],
    ["two IPv6 groups", (c) => { c["sparks:hosts"][0].address = "1:2"; },
        ['sparks:hosts[0].address: "1:2" is not an IP address or DNS name (not a valid IPv6 address)'], "schema"],
    ["an IPv6 zone index", (c) => { c["sparks:hosts"][0].address = "fe80::1%eth0"; },
        ['sparks:hosts[0].address: "fe80::1%eth0" is not an IP address or DNS name (a zone index such as %eth0 is not accepted)'], "schema"],
    ["the unspecified address", (c) => { c["sparks:hosts"][0].address = "0.0.0.0"; },
        ['sparks:hosts[0].address: "0.0.0.0" is not an IP address or DNS name (it is the unspecified address, which names no host)'], "schema"],
    ["a DNS name in upper case", (c) => { c["sparks:hosts"][0].address = "Spark-1.example.com"; },
        ['sparks:hosts[0].address: "Spark-1.example.com" is not an IP address or DNS name (write DNS names in lower case)'], "schema"],
    ["one IPv6 address spelled two ways", (c) => { c["sparks:hosts"][0].address = "::1"; c["sparks:hosts"][1].address = "0:0:0:0:0:0:0:1"; c["sparks:hosts"][1].port = 22; },
        ['sparks:hosts[1].address: "0:0:0:0:0:0:0:1" port 22 is already used by sparks:hosts[0] ("::1" port 22)'], "parser"],
    ["one IPv6 address in two cases", (c) => { c["sparks:hosts"][0].address = "fd00::a"; c["sparks:hosts"][1].address = "FD00::A"; c["sparks:hosts"][0].port = 2222; },
        ['sparks:hosts[1].address: "FD00::A" port 2222 is already used by sparks:hosts[0] ("fd00::a" port 2222)'], "parser"],
    ["an IPv4 address and its IPv6-mapped form", (c) => { c["sparks:hosts"][1].address = "::ffff:10.89.42.11"; c["sparks:hosts"][1].port = 22; },
        ['sparks:hosts[1].address: "::ffff:10.89.42.11" port 22 is already used by sparks:hosts[0] ("10.89.42.11" port 22)'], "parser"],
    // Ports: every instance and fork on a host holds one.
    ["too few ports for one host's databases", (c) => { c["sparks:pg"] = { ports: "5432-5433" }; },
        ['sparks:pg.ports: "5432-5433" has 2 ports, but host spark-1 needs 3 (1 instance and 2 forks); widen the range'], "parser"],
    // Redis: instances and forks of their own, on their own ports.
    ["a Redis name that is no name", (c) => { withRedis(c); c["sparks:redis"].forks[1].name = "cache_2"; },
        ['sparks:redis.forks[1].name: "cache_2" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)'], "schema"],
    ["a Redis instance and fork of one name", (c) => { withRedis(c); c["sparks:redis"].forks[0].name = "cache"; c["sparks:redis"].forks[1].source = "cache"; },
        ['sparks:redis.forks[0].name: "cache" is already used by sparks:redis.instances[0].name'], "parser"],
    ["a Redis instance on an unknown host", (c) => { withRedis(c); c["sparks:redis"].instances[0].host = "spark-9"; },
        ['sparks:redis.instances[0].host: "spark-9" is not a host in sparks:hosts'], "parser"],
    ["an unknown Redis fork source", (c) => { withRedis(c); c["sparks:redis"].forks[0].source = "nope"; },
        ['sparks:redis.forks[0].source: "nope" is not an instance in sparks:redis.instances or a fork in sparks:redis.forks'], "parser"],
    ["a Redis fork of a Postgres instance", (c) => { withRedis(c); c["sparks:redis"].forks[0].source = "app"; },
        ['sparks:redis.forks[0].source: "app" is not an instance in sparks:redis.instances or a fork in sparks:redis.forks'], "parser"],
    ["a Redis fork of a snapshot, which Redis does not have", (c) => { withRedis(c); c["sparks:redis"].forks[0].source = "cache@fixture"; },
        ['sparks:redis.forks[0].source: "cache@fixture" is not an instance or fork\'s name'], "schema"],
    ["a Redis instance with snapshots", (c) => { withRedis(c); c["sparks:redis"].instances[0].snapshots = ["fixture"]; },
        ["sparks:redis.instances[0].snapshots: unknown field (allowed: name, host)"], "schema"],
    ["a cycle of Redis forks", (c) => { withRedis(c); c["sparks:redis"].forks[0].source = "cache-review-2"; },
        ['sparks:redis.forks[0].source: "cache-review-2" leads to a cycle of forks',
            'sparks:redis.forks[1].source: "cache-review" leads to a cycle of forks'], "parser"],
    ["too few Redis ports for one host's databases", (c) => { withRedis(c); c["sparks:redis"].ports = "6379-6380"; },
        ['sparks:redis.ports: "6379-6380" has 2 ports, but host spark-1 needs 3 (1 instance and 2 forks); widen the range'], "parser"],
    ["a bad Redis port range", (c) => { withRedis(c); c["sparks:redis"].ports = "6449-6379"; },
        ['sparks:redis.ports: "6449-6379" is not a port range within 1024-65535, low to high'], "parser"],
    ["an appendfsync Redis has, but not one spark-redis offers", (c) => { withRedis(c); c["sparks:redis"].appendfsync = "no"; },
        ['sparks:redis.appendfsync: "no" is not "always" or "everysec"'], "schema"],
    ["Redis ports that overlap Postgres's", (c) => { withRedis(c); c["sparks:redis"].ports = "5400-5440"; },
        ['sparks:redis.ports: "5400-5440" overlaps sparks:pg.ports (5432-5499): spark-redis and spark-pg could hand out the same port'], "parser"],
    ["a skills repo on a port spark-redis hands out", (c) => { withRedis(c); c["sparks:skillsRepo"] = { host: "spark-1", port: 6400 }; },
        ["sparks:skillsRepo.port: 6400 is in sparks:redis.ports (6379-6449), which spark-redis hands to databases"], "parser"],
    ["bad Redis listen, protection and field", (c) => { c["sparks:redis"] = { listen: ["everywhere"], protectInstances: "yes", instance: [] }; },
        ['sparks:redis.listen[0]: "everywhere" is not "loopback" or "private"',
            'sparks:redis.protectInstances: "yes" is not true or false',
            "sparks:redis.instance: unknown field (allowed: ports, listen, appendfsync, protectInstances, instances, forks)"], "schema"],
    // The SSH private key, as a secret or a file: a private key, never shown.
    ["an empty private key secret", (c) => { delete c["sparks:ssh"].privateKeyFile; c["sparks:sshPrivateKey"] = ""; },
        ["sparks:sshPrivateKey: is empty (store the key: pulumi config set --secret sparks:sshPrivateKey < keyfile)"], "parser",
        ["sparks:sshPrivateKey"]],
    ["a public key stored as the private key secret", (c) => { delete c["sparks:ssh"].privateKeyFile; c["sparks:sshPrivateKey"] = HOST_KEY; },
        ['sparks:sshPrivateKey: (value not shown: it is a secret) is not a private key (no "-----BEGIN ... PRIVATE KEY-----" block)'], "parser",
        ["sparks:sshPrivateKey"]],
    ["a private key in plain text", (c) => { delete c["sparks:ssh"].privateKeyFile; c["sparks:sshPrivateKey"] = PRIVATE_KEY; },
        ["sparks:sshPrivateKey: is stored in plain text; set it with `pulumi config set --secret sparks:sshPrivateKey < keyfile`"], "schema"],
    ["a private key file that holds a public key", (c) => { c["sparks:ssh"].privateKeyFile = ".lab/ssh/id_ed25519.pub"; },
        ['sparks:ssh.privateKeyFile: ".lab/ssh/id_ed25519.pub" holds no private key (no "-----BEGIN ... PRIVATE KEY-----" block)'], "parser"],
    // A refused file name is never read, so the message cannot tell whether the file exists.
    ["a key file up and out of the project", (c) => { c["sparks:ssh"].privateKeyFile = "../../etc/shadow"; },
        ['sparks:ssh.privateKeyFile: "../../etc/shadow" must stay inside the project (no \'..\')'], "schema"],
    ["an absolute key file name", (c) => { c["sparks:ssh"].privateKeyFile = "/etc/shadow"; },
        ['sparks:ssh.privateKeyFile: "/etc/shadow" is not a file path (letters, digits, _ . / -)'], "schema"],
    // A key with a second colon is not the key before it.
    ["a key with a second colon", (c) => { c["sparks:hosts:extra"] = []; },
        ["sparks:hosts:extra: unknown key (known: sparks:lab, sparks:ssh, sparks:sshPrivateKey, sparks:pool, sparks:hosts, sparks:pg, sparks:postgres, sparks:forks, sparks:redis, sparks:devContainers, sparks:skillsRepo)"], "schema"],
    // The pool is mounted over its mount point: never a system directory.
    ["the pool over /etc", (c) => { c["sparks:pool"].mountPoint = "/etc"; },
        ["sparks:pool.mountPoint: \"/etc\" is not a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')"], "schema"],
    ["the pool over /srv itself", (c) => { c["sparks:pool"].mountPoint = "/srv"; },
        ["sparks:pool.mountPoint: \"/srv\" is not a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')"], "schema"],
    ["a host's own pool over the host tools", (c) => { c["sparks:hosts"][0].pool = { mountPoint: "/opt/sparks" }; },
        ["sparks:hosts[0].pool.mountPoint: \"/opt/sparks\" is not a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')"], "schema"],
    // Postgres open to the world only on purpose; CIDRs as networks.
    ["pg open to every IPv4 address", (c) => { c["sparks:pg"] = { allow: ["0.0.0.0/0"] }; },
        ['sparks:pg.allow[0]: "0.0.0.0/0" is open to the world (a prefix shorter than /8: any address in it may try password logins to every instance and fork; set sparks:pg.allowWorld: true if that is meant)'], "parser"],
    ["pg open to every IPv6 address", (c) => { c["sparks:pg"] = { allow: ["10.0.0.0/8", "::/0"], allowWorld: false }; },
        ['sparks:pg.allow[1]: "::/0" is open to the world (a prefix shorter than /16: any address in it may try password logins to every instance and fork; set sparks:pg.allowWorld: true if that is meant)'], "parser"],
    ["pg open to a quarter of the IPv4 internet", (c) => { c["sparks:pg"] = { allow: ["64.0.0.0/2"] }; },
        ['sparks:pg.allow[0]: "64.0.0.0/2" is open to the world (a prefix shorter than /8: any address in it may try password logins to every instance and fork; set sparks:pg.allowWorld: true if that is meant)'], "parser"],
    ["an IPv4 CIDR with host bits", (c) => { c["sparks:pg"] = { allow: ["10.89.42.1/24"] }; },
        ['sparks:pg.allow[0]: "10.89.42.1/24" is not a CIDR like 10.0.0.0/24 (bits are set past the /24 prefix: the network is 10.89.42.0/24)'], "parser"],
    ["an IPv6 CIDR with host bits", (c) => { c["sparks:pg"] = { allow: ["fd00:1::1/64"] }; },
        ['sparks:pg.allow[0]: "fd00:1::1/64" is not a CIDR like 10.0.0.0/24 (bits are set past the /64 prefix: the network is fd00:1::/64)'], "parser"],
    ["a CIDR prefix with a leading zero", (c) => { c["sparks:pg"] = { allow: ["10.0.0.0/08"] }; },
        ['sparks:pg.allow[0]: "10.0.0.0/08" is not a CIDR like 10.0.0.0/24'], "schema"],
    // Paths that reach commands and unit files are normalized.
    ["a device path with an empty part", (c) => { c["sparks:pool"].device = "/dev//vdb"; },
        ['sparks:pool.device: "/dev//vdb" is not a device path under /dev'], "schema"],
    ["a device path with a trailing slash", (c) => { c["sparks:pool"].device = "/dev/vdb/"; },
        ['sparks:pool.device: "/dev/vdb/" is not a device path under /dev'], "schema"],
    // A lab stack (sparks:lab) makes its lab hosts: spark-K, at 10.89.42.(10+K) port 22, pinned as made, reached with the lab's key.
    ["the old sparks:lab, a number of hosts", (c) => { c["sparks:lab"] = { hosts: 2 }; },
        ["sparks:lab.hosts: 2 is not a list", LOGIN_WAYS], "schema"],
    ["sparks:lab not an object", (c) => { c["sparks:lab"] = ["spark-1"]; },
        ['sparks:lab: ["spark-1"] is not an object'], "schema"],
    ["an unknown field in sparks:lab", (c) => { toLab(c); c["sparks:lab"].count = 2; },
        ["sparks:lab.count: unknown field (allowed: hosts)"], "schema"],
    ["a lab host that is no name", (c) => { toLab(c); c["sparks:lab"].hosts.push("spark 3"); },
        ['sparks:lab.hosts[2]: "spark 3" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            'sparks:lab.hosts[2]: "spark 3" is not a host in sparks:hosts'], "schema"],
    ["a lab host named twice", (c) => { toLab(c); c["sparks:lab"].hosts.push("spark-1"); },
        ['sparks:lab.hosts[2]: "spark-1" is already used by sparks:lab.hosts[0]'], "parser"],
    ["a lab host that is not in sparks:hosts", (c) => { toLab(c); c["sparks:lab"].hosts.push("spark-9"); },
        ['sparks:lab.hosts[2]: "spark-9" is not a host in sparks:hosts'], "parser"],
    ["a lab host that is no lab machine's name", (c) => {
        toLab(c);
        c["sparks:hosts"].push({ name: "db-1", address: "10.89.42.30" });
        c["sparks:lab"].hosts.push("db-1");
    }, ['sparks:lab.hosts[2]: "db-1" is not a lab machine (the lab\'s machines are spark-1 ... spark-100)'], "schema"],
    ["a lab machine past spark-100", (c) => {
        toLab(c);
        c["sparks:hosts"].push({ name: "spark-101", address: "10.89.42.111" });
        c["sparks:lab"].hosts.push("spark-101");
    }, ['sparks:lab.hosts[2]: "spark-101" is not a lab machine (the lab\'s machines are spark-1 ... spark-100)'], "schema"],
    ["a lab host at another address", (c) => { toLab(c); c["sparks:hosts"][1].address = "10.89.42.22"; },
        ['sparks:hosts[1].address: "10.89.42.22" is not the lab\'s address for this host (lab host spark-2 is at 10.89.42.12 port 22)'], "parser"],
    ["a lab host at another port", (c) => { toLab(c); c["sparks:hosts"][1].port = 2222; },
        ["sparks:hosts[1].port: 2222 is not the lab's port for this host (lab host spark-2 is at 10.89.42.12 port 22)"], "parser"],
    ["a lab host with a host key", (c) => { toLab(c); c["sparks:hosts"][1].hostKey = HOST_KEY; },
        ["sparks:hosts[1]: is a lab host (sparks:lab.hosts): its key is pinned from the machine the stack makes; remove hostKey/hostKeyFile"], "parser"],
    ["a lab host with a host key file", (c) => { toLab(c); c["sparks:hosts"][0].hostKeyFile = ".lab/hosts/spark-1/ssh_host_ed25519_key.pub"; },
        ["sparks:hosts[0]: is a lab host (sparks:lab.hosts): its key is pinned from the machine the stack makes; remove hostKey/hostKeyFile"], "parser"],
    ["a lab stack with a key file too", (c) => { toLab(c); c["sparks:ssh"].privateKeyFile = ".lab/ssh/id_ed25519"; },
        [LOGIN_WAYS], "parser"],
    ["a lab stack with the ssh agent too", (c) => { toLab(c); c["sparks:ssh"].agent = true; },
        [LOGIN_WAYS], "parser"],
    ["a host that is no lab host, with no key", (c) => { delete c["sparks:hosts"][1].hostKey; },
        ["sparks:hosts[1]: needs exactly one of hostKey (the pinned public host key) or hostKeyFile"], "parser"],
];

describe("a bad config", () => {
    test.each(badCases.map(([title, change, expected, caughtBy, secretKeys]) => [title, change, expected, caughtBy, secretKeys ?? []] as const))(
        "%s", (_title, change, expected, caughtBy, secretKeys) => {
            const config: Record<string, any> = good();
            change(config);
            const result = parseFleetConfig(config, env, secretKeys);
            expect(result.problems).toEqual(expected);
            expect(result.fleet).toBeUndefined();
            const errors = schemaErrors(asStackFile(config, secretKeys));
            expect({ refusedBySchema: errors.length > 0, errors }).toMatchObject({ refusedBySchema: caughtBy === "schema" });
        });

    test("the table has both kinds, and enough of them", () => {
        expect(badCases.length).toBeGreaterThanOrEqual(60);
        expect(badCases.filter((c) => c[3] === "schema").length).toBeGreaterThan(30);
    });

    test.each(["/", "/etc", "/usr", "/var", "/var/tmp", "/var/lib", "/root", "/home", "/opt", "/opt/sparks", "/run",
        "/run/postgresql", "/boot", "/dev", "/proc", "/sys", "/tmp", "/srv/", "/srv//sparks", "/mnt/./pool", "/data/../etc"])(
        "the pool is never mounted at %s", (mountPoint) => {
            const config: Record<string, any> = good();
            config["sparks:pool"].mountPoint = mountPoint;
            expect(parseFleetConfig(config, env).problems).toEqual([
                `sparks:pool.mountPoint: ${JSON.stringify(mountPoint)} is not a directory under /srv/, /mnt/ or /data/ (letters, digits, _ . -; no part may start with '.')`,
            ]);
            expect(schemaErrors(asStackFile(config))).not.toEqual([]);
        });

    test("a refused file name is never read", () => {
        const read: string[] = [];
        const recording: ConfigEnvironment = { projectDir: "/project", readFile: (file) => { read.push(file); return FILES[file]; } };
        const config: Record<string, any> = good();
        config["sparks:ssh"].privateKeyFile = "../../etc/shadow";
        config["sparks:hosts"][0].hostKeyFile = ".lab/../../../etc/ssh/ssh_host_ed25519_key";
        config["sparks:hosts"][1] = { ...config["sparks:hosts"][1], hostKey: undefined, hostKeyFile: "/etc/shadow" };
        expect(parseFleetConfig(config, recording).problems).toHaveLength(3);
        expect(read).toEqual([]);
    });

    test("every problem is reported at once", () => {
        const config: Record<string, any> = good();
        for (const [, change] of badCases.slice(0, 5)) change(config);
        expect(parseFleetConfig(config, env).problems).toHaveLength(5);
    });
});

describe("uriHost", () => {
    test.each([
        ["10.89.42.11", "10.89.42.11"],
        ["fd00::11", "[fd00::11]"],
        ["::ffff:10.0.0.1", "[::ffff:10.0.0.1]"],
        ["spark-1.example.com", "spark-1.example.com"],
    ])("%s is %s in a URI", (address, inUri) => {
        expect(uriHost(address)).toBe(inUri);
    });
});

describe("loading the config from Pulumi", () => {
    // As the language host hands it over: values as text, and the keys stored as secrets.
    function load(config: Record<string, unknown>, secretKeys: string[]): string {
        pulumi.runtime.setAllConfig(Object.fromEntries(Object.entries(config).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])), secretKeys);
        try {
            loadFleetConfig();
        } catch (error) {
            return (error as Error).message;
        }
        throw new Error("the config was accepted");
    }

    const fleet = (host: Record<string, unknown>) => ({
        "sparks:pool": { device: "/dev/vdb" },
        "sparks:hosts": [{ name: "spark-1", address: "10.89.42.11", hostKey: HOST_KEY, ...host }],
    });

    test("never shows the value of a key set with --secret", () => {
        const message = load({ ...fleet({ address: "hunter2.example.com; reboot" }), "sparks:ssh": { agent: true } }, ["sparks:hosts"]);
        expect(message).toContain("sparks:hosts[0].address: (value not shown: it is a secret) is not an IP address or DNS name");
        expect(message).not.toContain("hunter2");
    });

    test("never shows the private key secret", () => {
        const message = load({ ...fleet({}), "sparks:sshPrivateKey": "hunter2 is no key" }, ["sparks:sshPrivateKey"]);
        expect(message).toBe("invalid stack config, 1 problem(s):\n" +
            '  sparks:sshPrivateKey: (value not shown: it is a secret) is not a private key (no "-----BEGIN ... PRIVATE KEY-----" block)');
    });
});
