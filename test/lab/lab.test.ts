// The local lab on this machine, for real: `up` gives ssh-ready Debian hosts with systemd, a blank
// /dev/vdb, /dev/kvm, a network between them and the machine's Debian mirror; `down` leaves the
// machine as it found it, also after a killed `up` and when run twice. Needs root. The lab's
// bridge, namespaces and addresses exist once per machine: the tests wait until no lab is up and
// then hold the lab lock throughout, so no other checkout's lab comes and goes while they
// compare the machine's state.
import { ChildProcessWithoutNullStreams, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LabHost, machineState as labMachineState, sshArgs, writeKnownHosts } from "./labClient";

const machineState = () => labMachineState(LAB_DIR);

const ROOT = path.resolve(__dirname, "..", "..");
const LAB = path.join(ROOT, "lab", "sparks-lab");
const LAB_DIR = path.resolve(process.env.SPARKS_LAB_DIR ?? path.join(ROOT, ".lab"));
const POOL_IMAGE = path.join(LAB_DIR, "images", "pool.img");
const LAB_LOCK = "/run/lock/sparks-lab.lock";
const LAB_OWNER = "/run/sparks-lab/owner";
/** The lab verbs run by the tests skip the lock the tests hold. */
const LAB_ENV = { ...process.env, SPARKS_LAB_LOCK_HELD: "1" };
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), "sparks-lab-test-"));
let tmpFiles = 0;

/** Runs a program; throws with its stderr when it exits non-zero. */
function run(file: string, args: string[], timeoutMs = 10 * 60 * 1000): string {
    try {
        return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs, env: LAB_ENV }).trim();
    } catch (error) {
        const e = error as { status?: number; signal?: string; stderr?: string; stdout?: string };
        throw new Error(`${file} ${args.join(" ")} failed (${e.status ?? e.signal}):\n${e.stderr ?? ""}${e.stdout ?? ""}`);
    }
}

const lab = (...args: string[]): string => run(LAB, args);
const labStatus = (): LabHost[] => JSON.parse(lab("status", "--json"));

/** A known_hosts file built only from the host keys the lab recorded. */
function knownHostsFor(hosts: LabHost[]): string {
    const file = path.join(TMP, `known_hosts.${++tmpFiles}`);
    writeKnownHosts(file, hosts);
    return file;
}

function ssh(host: LabHost, knownHosts: string, command: string): string {
    return run("ssh", sshArgs(host, knownHosts, command), 5 * 60 * 1000);
}

function stat(file: string): fs.Stats | undefined {
    try {
        return fs.statSync(file);
    } catch {
        return undefined;
    }
}

function seconds(since: bigint): number {
    return Number(process.hrtime.bigint() - since) / 1e9;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A `flock` process holding the lab lock until its stdin closes (also when jest dies). */
function tryLock(): Promise<ChildProcessWithoutNullStreams | undefined> {
    const holder = spawn("flock", ["-n", LAB_LOCK, "-c", "echo locked; exec cat"]);
    return new Promise((resolve) => {
        holder.stdout.once("data", () => resolve(holder));
        holder.once("exit", () => resolve(undefined));
    });
}

let lockHolder: ChildProcessWithoutNullStreams | undefined;

beforeAll(async () => {
    if (process.getuid?.() !== 0) throw new Error("the lab tests need root");
    fs.mkdirSync(path.dirname(LAB_LOCK), { recursive: true });
    const deadline = Date.now() + 15 * 60 * 1000;
    for (;;) {
        const holder = await tryLock();
        // Every verb under the lock takes down a lab that holds the names with nothing running
        // (a killed session's); the down of a lab that never was changes nothing else.
        if (holder && stat(LAB_OWNER)) {
            execFileSync(LAB, ["down"], { stdio: "ignore", env: { ...LAB_ENV, SPARKS_LAB_DIR: path.join(TMP, "no-lab") } });
        }
        if (holder && !stat(LAB_OWNER)) {
            lockHolder = holder;
            break;
        }
        holder?.stdin.end();
        const owner = stat(LAB_OWNER) ? fs.readFileSync(LAB_OWNER, "utf8").trim() : "unknown";
        if (Date.now() > deadline) throw new Error(`the lab in ${owner} stayed up for 15 minutes`);
        await sleep(2000);
    }
    const hosts = labStatus();
    if (hosts.length > 0) throw new Error(`the lab is up (${hosts.map((h) => h.name).join(", ")}): run lab/sparks-lab down first`);
}, 16 * 60 * 1000);

afterAll(() => {
    lockHolder?.stdin.end();
    fs.rmSync(TMP, { recursive: true, force: true });
});

test("up 2 gives two ssh-ready hosts with pinned keys, a stopped one starts again, and down leaves the machine as it was", async () => {
    const before = machineState();
    const started = process.hrtime.bigint();
    lab("up", "2");
    console.log(`sparks-lab up 2: ${seconds(started).toFixed(1)} s`);
    try {
        const hosts = labStatus();
        expect(hosts.map(({ name, address, port, user, state }) => ({ name, address, port, user, state }))).toEqual([
            { name: "spark-1", address: "10.89.42.11", port: 22, user: "root", state: "running" },
            { name: "spark-2", address: "10.89.42.12", port: 22, user: "root", state: "running" },
        ]);
        for (const h of hosts) {
            expect(path.isAbsolute(h.hostKeyFile) && path.isAbsolute(h.privateKeyFile)).toBe(true);
            expect(fs.readFileSync(h.hostKeyFile, "utf8")).toMatch(/^ssh-ed25519 AAAA[0-9A-Za-z+/=]+ \S+\n$/);
            expect(typeof h.pid).toBe("number");
        }
        expect(fs.readFileSync(hosts[0].hostKeyFile, "utf8")).not.toEqual(fs.readFileSync(hosts[1].hostKeyFile, "utf8"));

        // Like a stock Debian server, sshd offers RSA, ECDSA and ed25519, each the key the lab recorded.
        const keyPattern = { rsa: /^ssh-rsa /, ecdsa: /^ecdsa-sha2-nistp256 /, ed25519: /^ssh-ed25519 / };
        for (const h of hosts) {
            expect(Object.keys(h.hostKeyFiles).sort()).toEqual(["ecdsa", "ed25519", "rsa"]);
            const served = run("ssh-keyscan", ["-T", "5", "-t", "rsa,ecdsa,ed25519", h.address]).split("\n")
                .map((line) => line.split(" ").slice(1, 3).join(" ")).sort();
            const recorded = Object.entries(h.hostKeyFiles).map(([type, file]) => {
                const key = fs.readFileSync(file, "utf8").trim().split(" ").slice(0, 2).join(" ");
                expect(key).toMatch(keyPattern[type as keyof typeof keyPattern]);
                return key;
            }).sort();
            expect(served).toEqual(recorded);
        }

        const knownHosts = knownHostsFor(hosts);
        for (const [h, other] of [[hosts[0], hosts[1]], [hosts[1], hosts[0]]]) {
            expect(ssh(h, knownHosts, "systemctl is-system-running")).toBe("running");
            expect(ssh(h, knownHosts, "hostname")).toBe(h.name);
            expect(ssh(h, knownHosts, "stat -c %F /dev/vdb")).toBe("block special file");
            expect(ssh(h, knownHosts, "blkid -p /dev/vdb || echo blank")).toBe("blank");
            expect(ssh(h, knownHosts, `python3 -c 'import fcntl; print(fcntl.ioctl(open("/dev/kvm"), 0xAE00))'`)).toBe("12");
            expect(ssh(h, knownHosts, `ping -c 1 -W 2 ${other.address} >/dev/null && ping -c 1 -W 2 ${other.name} >/dev/null && echo ok`)).toBe("ok");
            // What a fresh server has, and what the Sparks setup must install itself.
            expect(ssh(h, knownHosts, "dpkg-query -W -f '${Status}\\n' openssh-server sudo python3 curl")).toMatch(/^(install ok installed\n?){4}$/);
            expect(ssh(h, knownHosts, "for p in btrfs-progs postgresql git systemd-container; do dpkg-query -W -f '${Status}' $p 2>/dev/null | grep -q 'ok installed' && echo $p; done; true")).toBe("");
        }

        // The host's /dev/kvm is a node of its own: the Sparks setup's chgrp/chmod stays inside.
        const machineKvm = fs.statSync("/dev/kvm");
        ssh(hosts[0], knownHosts, "chmod 0666 /dev/kvm");
        expect(fs.statSync("/dev/kvm").mode).toBe(machineKvm.mode);

        // apt reaches the machine's mirror, and only failures count as failures.
        ssh(hosts[0], knownHosts, "apt-get update --error-on=any -qq");
        expect(ssh(hosts[0], knownHosts, "apt-cache policy btrfs-progs | sed -n 's/ *Candidate: //p'")).toMatch(/^\d/);

        // Pinning: a host presenting any other key is refused.
        const stranger = path.join(TMP, "stranger");
        run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", stranger]);
        const wrongKnownHosts = knownHostsFor([{ ...hosts[0], hostKeyFile: `${stranger}.pub` }]);
        expect(() => ssh(hosts[0], wrongKnownHosts, "true")).toThrow(/Host key verification failed|HOST IDENTIFICATION HAS CHANGED/);

        // What the Sparks setup and its dev containers leave in a host, for down to clear (trap 4):
        // a btrfs pool on /dev/vdb with a loop device over a file in it, a loop device over a
        // file in the host's root, and subvolumes nested in the host's root (deepest first).
        const disk = fs.readFileSync(path.join(LAB_DIR, "hosts", hosts[0].name, "loop"), "utf8").trim();
        run("mkfs.btrfs", ["-q", disk]);
        const rootfs = path.join(LAB_DIR, "pool", "hosts", hosts[0].name);
        run("btrfs", ["subvolume", "create", `${rootfs}/var/lib/nested`]);
        run("btrfs", ["subvolume", "create", `${rootfs}/var/lib/nested/deeper`]);
        run("btrfs", ["subvolume", "snapshot", "-r", `${rootfs}/var/lib/nested`, `${rootfs}/var/lib/nested-ro`]);
        ssh(hosts[0], knownHosts, [
            "set -e",
            "attach() { d=$(losetup -f); [ -e $d ] || mknod $d b 7 ${d#/dev/loop}; losetup $d $1; }",
            "[ -e /dev/loop-control ] || mknod /dev/loop-control c 10 237",
            "mkdir -p /srv/sparks && mount /dev/vdb /srv/sparks",
            "truncate -s 64M /srv/sparks/dev-container.img /var/tmp/dev-container.img",
            "attach /srv/sparks/dev-container.img",
            "attach /var/tmp/dev-container.img",
        ].join("\n"));
        expect(machineState().loops.filter((l) => l.endsWith("/dev-container.img"))).toHaveLength(2);

        // A host that goes down (here: powers off) starts again as the same machine: same keys, same data.
        ssh(hosts[1], knownHosts, "echo kept >/root/marker");
        // The host may close the connection before ssh sees the command's status: that is the poweroff.
        try { run("ssh", sshArgs(hosts[1], knownHosts, "systemctl poweroff --no-block")); } catch { /* closed by the host */ }
        for (const deadline = Date.now() + 60_000; labStatus()[1].state !== "stopped"; await sleep(200)) {
            if (Date.now() > deadline) throw new Error("spark-2 did not stop within 60 s of poweroff");
        }
        lab("start", "spark-2");
        expect(labStatus()[1].state).toBe("running");
        expect(ssh(hosts[1], knownHosts, "cat /root/marker; systemctl is-system-running")).toBe("kept\nrunning");
    } finally {
        lab("down");
    }
    expect(machineState()).toEqual(before);
    expect(labStatus()).toEqual([]);
    // Nothing of the lab is left on disk but its login key (the base image stays in the machine cache).
    expect(fs.readdirSync(LAB_DIR)).toEqual(["ssh"]);
    expect(fs.readdirSync(path.join(LAB_DIR, "ssh")).sort()).toEqual(["id_ed25519", "id_ed25519.pub"]);
}, 15 * 60 * 1000);

test("down after a killed up leaves the machine as it was", async () => {
    const before = machineState();
    const up = spawn(LAB, ["up", "2"], { detached: true, stdio: "ignore", env: LAB_ENV }); // its own process group
    const exited = new Promise<void>((resolve) => up.on("exit", () => resolve()));
    // Kill it halfway: once the first host is booting.
    const started = Date.now();
    while (!stat(path.join(LAB_DIR, "hosts", "spark-1", "nspawn.pid"))) {
        if (up.exitCode !== null) throw new Error(`up exited (${up.exitCode}) before a host started`);
        if (Date.now() - started > 10 * 60 * 1000) throw new Error("no host started within 10 minutes");
        await sleep(50);
    }
    process.kill(-up.pid!, "SIGKILL");
    await exited;
    expect(machineState()).not.toEqual(before); // the killed up did leave something to clean

    lab("down");
    expect(machineState()).toEqual(before);
    expect(labStatus()).toEqual([]);
    expect(stat(POOL_IMAGE)).toBeUndefined(); // the pool image, with every subvolume in it, is gone
}, 15 * 60 * 1000);

test("a lab whose every process was killed without its down (its session ended) is taken down by another checkout's up", () => {
    const before = machineState();
    const otherDir = path.join(TMP, "other-checkout", ".lab");
    const otherEnv = { ...LAB_ENV, SPARKS_LAB_DIR: otherDir };
    execFileSync(LAB, ["up", "1"], { stdio: "ignore", env: otherEnv, timeout: 10 * 60 * 1000 });
    expect(fs.readFileSync(LAB_OWNER, "utf8").trim()).toBe(otherDir);
    // What a killed session leaves: the names, mounts and loop devices, and no process at all.
    const killed = labMachineState(otherDir).processes.map((p) => Number(p.split(" ")[0]));
    expect(killed.length).toBeGreaterThan(1); // the host and the mirror forwarder, at least
    for (const pid of killed) process.kill(pid, "SIGKILL");
    for (const deadline = Date.now() + 10_000; labMachineState(otherDir).processes.length > 0;) {
        if (Date.now() > deadline) throw new Error(`still running: ${labMachineState(otherDir).processes.join("; ")}`);
        execFileSync("sleep", ["0.1"]);
    }
    expect(labMachineState(otherDir).mounts).not.toEqual([]);

    const up = execFileSync(LAB, ["up", "1"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env: LAB_ENV, timeout: 10 * 60 * 1000 });
    try {
        expect(fs.readFileSync(LAB_OWNER, "utf8").trim()).toBe(LAB_DIR);
        expect(labStatus().map((h) => [h.name, h.state])).toEqual([["spark-1", "running"]]);
        // Nothing of the dead lab is left (the machine-wide names are this lab's now).
        const { processes, loops, mounts } = labMachineState(otherDir);
        const ofOther = (items: string[]) => items.filter((item) => item.includes(otherDir));
        expect({ processes: ofOther(processes), loops: ofOther(loops), mounts: ofOther(mounts) })
            .toEqual({ processes: [], loops: [], mounts: [] });
        expect(up).toContain("spark-1");
    } finally {
        lab("down");
    }
    expect(machineState()).toEqual(before);
}, 15 * 60 * 1000);

test("down twice in a row after up: the second finds nothing and changes nothing", () => {
    const before = machineState();
    lab("up", "1");
    lab("down");
    expect(machineState()).toEqual(before);
    lab("down");
    expect(machineState()).toEqual(before);
    expect(stat(POOL_IMAGE)).toBeUndefined(); // the pool image, with every subvolume in it, is gone
}, 15 * 60 * 1000);

test("hosts by name, one at a time: down NAME removes only that host, and the last one takes the whole lab", async () => {
    const before = machineState();
    const made = JSON.parse(lab("up", "--json", "spark-1", "spark-2")) as (LabHost & { hostKey: string; boots: number })[];
    try {
        expect(made.map((h) => [h.name, h.state, h.boots])).toEqual([["spark-1", "running", 1], ["spark-2", "running", 1]]);
        expect(made[0].hostKey).toBe(fs.readFileSync(made[0].hostKeyFile, "utf8").trim().split(" ").slice(0, 2).join(" "));
        // Asking again adopts what is there: the same machine, key and boot count.
        expect((JSON.parse(lab("up", "--json", "spark-2")) as typeof made)[0]).toEqual(made[1]);

        lab("down", "spark-2");
        expect(labStatus().map((h) => h.name)).toEqual(["spark-1"]);
        const knownHosts = knownHostsFor([made[0]]);
        expect(ssh(made[0], knownHosts, "systemctl is-system-running")).toBe("running");
        expect(run("ip", ["netns", "list"])).not.toContain("sparks-spark-2");
        expect(stat(path.join(LAB_DIR, "hosts", "spark-2"))).toBeUndefined();

        // Made again at the same address: a new machine (new key), reachable at once (no stale ARP entry).
        const started = process.hrtime.bigint();
        const again = (JSON.parse(lab("up", "--json", "spark-2")) as typeof made)[0];
        console.log(`sparks-lab up spark-2 after down spark-2: ${seconds(started).toFixed(1)} s`);
        expect(again.hostKey).not.toBe(made[1].hostKey);
        expect(ssh(again, knownHostsFor([again]), "getent hosts spark-1 | cut -d' ' -f1")).toBe("10.89.42.11");
        expect(() => lab("up", "--json", "spark-0")).toThrow(/'spark-0' is not a lab host name: lab hosts are spark-1 \.\.\. spark-100/);
    } finally {
        lab("down", "spark-1");
        lab("down", "spark-2");
    }
    expect(machineState()).toEqual(before);
    expect(fs.readdirSync(LAB_DIR)).toEqual(["ssh"]);
}, 15 * 60 * 1000);
