// The config schema, checked without the engine: good stack files parse, bad ones fail with one
// exact message per problem.
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ConfigEnvironment, parseFleetConfig } from "../../components/config";

const ROOT = path.resolve(__dirname, "../..");
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/** A fake project directory: the lab's key files exist, nothing else does. */
const env: ConfigEnvironment = {
    projectDir: "/project",
    readFile: (file) => ({
        "/project/.lab/ssh/id_ed25519": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        "/project/.lab/hosts/spark-1/ssh_host_ed25519_key.pub": `${HOST_KEY} root@spark-1\n`,
        "/project/.lab/hosts/spark-2/ssh_host_ed25519_key.pub": `${HOST_KEY} root@spark-2\n`,
    } as Record<string, string>)[file],
};

function stackConfig(stack: string): Record<string, unknown> {
    return YAML.parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")).config;
}

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

describe("stack files", () => {
    test.each(["dev", "prod"])("Pulumi.%s.yaml is valid", (stack) => {
        expect(parseFleetConfig(stackConfig(stack), env).problems).toEqual([]);
    });

    test("dev and prod use the same keys, so they differ only in values", () => {
        expect(Object.keys(stackConfig("dev")).sort()).toEqual(Object.keys(stackConfig("prod")).sort());
    });

    test("prod only names documentation addresses (192.0.2.0/24), which no test may contact", () => {
        const hosts = stackConfig("prod")["sparks:hosts"] as { address: string }[];
        expect(hosts.length).toBeGreaterThan(0);
        for (const host of hosts) expect(host.address).toMatch(/^192\.0\.2\.\d+$/);
    });
});

describe("no code decides by the stack's name", () => {
    const sources = ["index.ts", ...fs.readdirSync(path.join(ROOT, "components")).map((f) => `components/${f}`)]
        .filter((f) => f.endsWith(".ts"));
    test.each(sources)("%s does not read the stack name", (file) => {
        expect(fs.readFileSync(path.join(ROOT, file), "utf8")).not.toMatch(/getStack\s*\(|PULUMI_STACK|\.stack\b/);
    });
});

describe("a good config", () => {
    const { fleet, problems } = parseFleetConfig(good(), env);

    test("parses with defaults applied", () => {
        expect(problems).toEqual([]);
        expect(fleet?.ssh).toEqual({ user: "root", privateKeyFile: ".lab/ssh/id_ed25519", agent: false, connectAttempts: 6 });
        expect(fleet?.hosts[0]).toEqual({
            name: "spark-1", address: "10.89.42.11", port: 22, user: "root", hostKey: HOST_KEY,
            pool: { device: "/dev/vdb", mountPoint: "/srv/sparks", wipeOnDelete: false },
        });
        expect(fleet?.pg).toEqual({ ports: { first: 5432, last: 5499 }, listen: ["loopback", "private"], allow: [], protectInstances: true });
    });

    test("the pinned host key drops the comment", () => {
        expect(fleet?.hosts[0].hostKey).toBe(HOST_KEY);
    });

    test("a fork of a fork lives on its root instance's host", () => {
        expect(fleet?.forks).toEqual([
            { name: "app-review", source: "app", host: "spark-1" },
            { name: "app-review-2", source: "app-review", host: "spark-1" },
        ]);
    });

    test("a config with no hosts is an empty fleet", () => {
        expect(parseFleetConfig({}, env)).toEqual({
            fleet: { ssh: { user: "root", agent: false, connectAttempts: 6, privateKeyFile: undefined }, hosts: [], pg: { ports: { first: 5432, last: 5499 }, listen: ["loopback", "private"], allow: [], protectInstances: true }, postgres: [], forks: [], devContainers: [], skillsRepo: undefined },
            problems: [],
        });
    });
});

type Change = (config: Record<string, any>) => void;
const badCases: [string, Change, string[]][] = [
    ["wrong type", (c) => { c["sparks:hosts"][0].port = "22"; },
        ['sparks:hosts[0].port: "22" is not a TCP port (1-65535)']],
    ["port out of range", (c) => { c["sparks:hosts"][1].port = 70000; },
        ["sparks:hosts[1].port: 70000 is not a TCP port (1-65535)"]],
    ["unknown top-level key", (c) => { c["sparks:host"] = []; },
        ["sparks:host: unknown key (known: sparks:ssh, sparks:sshPrivateKey, sparks:pool, sparks:hosts, sparks:pg, sparks:postgres, sparks:forks, sparks:devContainers, sparks:skillsRepo)"]],
    ["unknown field", (c) => { c["sparks:hosts"][0].adress = "10.0.0.1"; },
        ["sparks:hosts[0].adress: unknown field (allowed: name, address, port, user, hostKey, hostKeyFile, pool)"]],
    ["unknown namespace", (c) => { c["spraks:hosts"] = []; },
        ['spraks:hosts: unknown config namespace "spraks" (Sparks settings go under "sparks:")']],
    ["duplicate host name", (c) => { c["sparks:hosts"][1].name = "spark-1"; },
        ['sparks:hosts[1].name: "spark-1" is already used by sparks:hosts[0].name']],
    ["duplicate instance and fork name", (c) => { c["sparks:forks"][0].name = "app"; c["sparks:forks"][1].source = "app"; },
        ['sparks:forks[0].name: "app" is already used by sparks:postgres[0].name']],
    ["a name with ;", (c) => { c["sparks:postgres"][0].name = "app;reboot"; },
        ['sparks:postgres[0].name: "app;reboot" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            'sparks:forks[0].source: "app" is not an instance in sparks:postgres or a fork in sparks:forks']],
    ["a name with /", (c) => { c["sparks:hosts"][0].name = "../spark"; },
        ['sparks:hosts[0].name: "../spark" is not a valid name (a-z, 0-9 and inner dashes, 2-32 long, starting with a letter)',
            'sparks:postgres[0].host: "spark-1" is not a host in sparks:hosts']],
    ["bad address", (c) => { c["sparks:hosts"][0].address = "10.0.0.1; rm -rf /"; },
        ['sparks:hosts[0].address: "10.0.0.1; rm -rf /" is not an IP address or DNS name']],
    ["bad host key", (c) => { c["sparks:hosts"][1].hostKey = "ssh-ed25519 $(reboot)"; },
        ['sparks:hosts[1].hostKey: "ssh-ed25519 $(reboot)" is not an SSH public host key ("ssh-ed25519 AAAA...")']],
    ["an RSA host key, which the command provider cannot verify on OpenSSH 8.8+",
        (c) => { c["sparks:hosts"][1].hostKey = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7"; },
        ['sparks:hosts[1].hostKey: "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC7" is an RSA host key, which the command provider verifies only with SHA-1 signatures ("ssh-rsa") that OpenSSH 8.8 and later refuse; pin the host\'s ed25519 or ECDSA key instead']],
    ["both host key forms", (c) => { c["sparks:hosts"][1].hostKeyFile = "k.pub"; },
        ["sparks:hosts[1]: needs exactly one of hostKey (the pinned public host key) or hostKeyFile"]],
    ["missing host key file", (c) => { c["sparks:hosts"][0].hostKeyFile = ".lab/hosts/spark-9/key.pub"; },
        ['sparks:hosts[0].hostKeyFile: ".lab/hosts/spark-9/key.pub" does not exist (for the lab\'s hosts: run lab/sparks-lab up)']],
    ["key file outside the project", (c) => { c["sparks:ssh"].privateKeyFile = "../id_ed25519"; },
        ['sparks:ssh.privateKeyFile: "../id_ed25519" must stay inside the project (no \'..\')',
            'sparks:ssh.privateKeyFile: "../id_ed25519" does not exist (for the lab: run lab/sparks-lab up)']],
    ["two ways to log in", (c) => { c["sparks:ssh"].agent = true; },
        ["sparks:ssh: needs exactly one way to log in: sparks:sshPrivateKey (a secret), ssh.privateKeyFile or ssh.agent: true"]],
    ["no pool device", (c) => { delete c["sparks:pool"]; },
        ["sparks:hosts[0]: has no btrfs pool device: set sparks:pool.device (or this host's pool.device)",
            "sparks:hosts[1]: has no btrfs pool device: set sparks:pool.device (or this host's pool.device)"]],
    ["bad device", (c) => { c["sparks:pool"].device = "/dev/vdb; mkfs"; },
        ['sparks:pool.device: "/dev/vdb; mkfs" is not a device path under /dev']],
    ["mount point with ..", (c) => { c["sparks:pool"].mountPoint = "/srv/../etc"; },
        ["sparks:pool.mountPoint: \"/srv/../etc\" is not an absolute path (letters, digits, _ . -; no part may start with '.')"]],
    ["unknown host for an instance", (c) => { c["sparks:postgres"][0].host = "spark-9"; },
        ['sparks:postgres[0].host: "spark-9" is not a host in sparks:hosts']],
    ["unknown fork source", (c) => { c["sparks:forks"][0].source = "nope"; },
        ['sparks:forks[0].source: "nope" is not an instance in sparks:postgres or a fork in sparks:forks']],
    ["a cycle of forks", (c) => { c["sparks:forks"][0].source = "app-review-2"; },
        ['sparks:forks[0].source: "app-review-2" leads to a cycle of forks',
            'sparks:forks[1].source: "app-review" leads to a cycle of forks']],
    ["bad port range", (c) => { c["sparks:pg"] = { ports: "5499-5432" }; },
        ['sparks:pg.ports: "5499-5432" is not a port range within 1024-65535, low to high']],
    ["bad listen and allow", (c) => { c["sparks:pg"] = { listen: ["everywhere"], allow: ["10.0.0.0/33"] }; },
        ['sparks:pg.listen[0]: "everywhere" is not "loopback" or "private"',
            'sparks:pg.allow[0]: "10.0.0.0/33" is not a CIDR like 10.0.0.0/24']],
    ["hosts not a list", (c) => { c["sparks:hosts"] = { name: "spark-1" }; },
        ['sparks:hosts: {"name":"spark-1"} is not a list',
            'sparks:postgres[0].host: "spark-1" is not a host in sparks:hosts']],
    ["dev containers are not deployable yet", (c) => { c["sparks:devContainers"] = [{ name: "alice", host: "spark-1" }]; },
        ["sparks:devContainers: dev containers are not deployable yet; remove this key for now"]],
];

describe("a bad config", () => {
    test.each(badCases)("%s", (_title, change, expected) => {
        const config = good();
        change(config);
        const result = parseFleetConfig(config, env);
        expect(result.problems).toEqual(expected);
        expect(result.fleet).toBeUndefined();
    });

    test("every problem is reported at once", () => {
        const config = good();
        for (const [, change] of badCases.slice(0, 5)) change(config);
        expect(parseFleetConfig(config, env).problems).toHaveLength(5);
    });
});
